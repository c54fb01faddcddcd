"""Teacher LLM access: an OpenAI-compatible chat client with retries (``client``) and its
exceptions (``errors``). Serving or launching teacher models is not done here."""

from orchestrator.teacher.client import Completion, TeacherClient, TeacherSettings
from orchestrator.teacher.errors import TeacherError, TeacherFatalError

__all__ = ["Completion", "TeacherClient", "TeacherError", "TeacherFatalError", "TeacherSettings"]
