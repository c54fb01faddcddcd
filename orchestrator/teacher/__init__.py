"""Teacher LLM access: an OpenAI-compatible chat client with retries (``client``), its settings
(``settings``), replies (``replies``) and exceptions (``errors``). Serving or launching teacher
models is not done here."""

from orchestrator.teacher.client import TeacherClient
from orchestrator.teacher.errors import TeacherError, TeacherFatalError
from orchestrator.teacher.replies import Completion
from orchestrator.teacher.settings import TeacherSettings

__all__ = ["Completion", "TeacherClient", "TeacherError", "TeacherFatalError", "TeacherSettings"]
