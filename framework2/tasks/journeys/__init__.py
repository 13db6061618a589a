"""PUXT user journeys: funnels, session paths, Markov removal effects, ranked recommendations and the report.

Plain functions over an events table (``user, event, timestamp`` and optionally ``segment``/``session``);
the ``puxt-journeys`` flow wraps them. Start with :func:`framework2.tasks.journeys.funnels.prepare_events`
to validate once and pass the result to every analysis.
"""
