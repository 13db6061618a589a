"""PUXT performance impact assessment: synthetic probes with phase timings, real-user Web Vitals, release
comparisons and the report.

Plain functions; the ``puxt-performance`` flow wraps them and stores the results. Modules:
:mod:`~framework2.tasks.performance.synthetic` (:func:`probe`), :mod:`~framework2.tasks.performance.rum`
(:func:`prepare_rum`, :func:`rum_summary`), :mod:`~framework2.tasks.performance.compare`
(:func:`compare_releases`, :func:`compare_rum`, :func:`response_time_alert`) and
:mod:`~framework2.tasks.performance.report` (:func:`performance_markdown`, :func:`performance_chart`).
"""
