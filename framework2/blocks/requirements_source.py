"""PCES requirements source block: where the requirement files are (a directory or a git repository), and
which Jira epics and stories count as requirements too.

The reading is in ``framework2.tasks.context.sources`` and ``framework2.tasks.context.requirements``.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, field_validator, model_validator

from framework2.tasks.context.source_checks import (
    branch_problem,
    git_url_problem,
    pattern_problem,
    subdirectory_problem,
)


class RequirementsSource(Block):
    """Markdown requirement files (a directory or a git repository) and, optionally, Jira epics and stories.

    Attributes:
        path: A local directory of Markdown requirement files (a git working tree is fine; it is read as is).
        git_url: A git repository to clone and then pull on every ingest (https, ssh, file:// or a local path).
        branch: The branch of ``git_url`` to read.
        subdirectory: Where the requirement files are inside the repository or directory.
        pattern: Which files are requirements (a glob below the directory).
        jira_source: Name of a Jira Source block whose issues (``jira_jql``) are requirements too.
        jira_jql: Which Jira issues are requirements, e.g. ``issuetype in (Epic, Story) AND project = SHOP``.
        timeout_seconds: How long one git command may take.
    """

    _block_type_name: ClassVar[str] = "Requirements Source"
    _block_type_slug: ClassVar[str] = "requirements-source"
    _description: ClassVar[str] = (
        "Where PCES, the context evolution system, reads requirements: a directory or git repository of Markdown "
        "files with front matter (id, title, priority, owner, links to tasks and components), and optionally Jira "
        "epics and stories through a Jira Source block."
    )
    _code_example: ClassVar[str] = """
    ```python
    from framework2.blocks.requirements_source import RequirementsSource

    RequirementsSource(git_url="https://git.example.com/shop/requirements.git", branch="main").save("shop")
    RequirementsSource(path="/srv/requirements", jira_source="acme", jira_jql="issuetype = Epic").save("acme")
    ```

    A requirement file starts with front matter:

        ---
        id: REQ-12
        title: Guest checkout
        priority: must
        owner: ana
        tasks: [jira:SHOP-41, jira:SHOP-42]
        components: [checkout]
        ---

    and lists its acceptance criteria under an "Acceptance criteria" heading. Add the block's name to
    `pces.requirementsSources`.
    """

    path: str | None = Field(None, description="Local directory of Markdown requirement files.")
    git_url: str | None = Field(
        None, description="Git repository to clone and pull on every ingest (https, ssh, file:// or a local path)."
    )
    branch: str = Field("main", min_length=1, description="Branch of the git repository to read.")
    subdirectory: str = Field("", description="Folder of the requirement files inside the directory or repository.")
    pattern: str = Field("**/*.md", min_length=1, description="Which files are requirements (glob).")
    jira_source: str | None = Field(None, description="Name of a Jira Source block; its jira_jql issues count too.")
    jira_jql: str | None = Field(None, description="Jira issues that are requirements, e.g. 'issuetype = Epic'.")
    timeout_seconds: float = Field(120.0, gt=0, le=3600, description="How long one git command may take.")

    @model_validator(mode="after")
    def _one_place(self) -> RequirementsSource:
        if self.path and self.git_url:
            raise ValueError("give either path (a local directory) or git_url (a repository to clone), not both")
        if not (self.path or self.git_url or self.jira_source):
            raise ValueError("give a path, a git_url or a jira_source: there is nowhere to read requirements from")
        if self.jira_source and not (self.jira_jql or "").strip():
            raise ValueError("jira_source needs jira_jql saying which issues are requirements, e.g. 'issuetype = Epic'")
        return self

    # The fields below end up on git's command line or in file paths: refused here so a bad block cannot be
    # saved (sources.py checks again on use, for blocks saved before these rules).
    @field_validator("branch")
    @classmethod
    def _branch_is_a_branch_name(cls, branch: str) -> str:
        if problem := branch_problem(branch):
            raise ValueError(f"{problem}; give the name of a branch, e.g. 'main' or 'release/2.1'")
        return branch

    @field_validator("subdirectory")
    @classmethod
    def _subdirectory_stays_inside(cls, subdirectory: str) -> str:
        if problem := subdirectory_problem(subdirectory):
            raise ValueError(f"{problem}; give a folder relative to the repository or path, e.g. 'requirements'")
        return subdirectory

    @field_validator("pattern")
    @classmethod
    def _pattern_stays_inside(cls, pattern: str) -> str:
        if problem := pattern_problem(pattern):
            raise ValueError(f"{problem}; give a glob below the folder, e.g. '**/*.md'")
        return pattern

    @field_validator("git_url")
    @classmethod
    def _git_url_is_no_option(cls, git_url: str | None) -> str | None:
        if git_url and (problem := git_url_problem(git_url)):
            raise ValueError(f"{problem}; give the repository's https, ssh or file:// URL or a local path")
        return git_url
