"""callstate for a Flask chat backend: the REST client, the blueprint the React app calls, and
the call events pushed over Socket.IO (README.md, "From Flask")."""
from .blueprint import calls_blueprint
from .client import CallstateClient, CallstateError
from .events import (SOCKET_EVENTS, EventFanout, EventRelay, MemoryCursorStore,
                     SignatureError, WebhookVerifier, events_blueprint, socketio_auth,
                     user_room)

__all__ = ['CallstateClient', 'CallstateError', 'calls_blueprint', 'EventFanout',
           'EventRelay', 'MemoryCursorStore', 'SOCKET_EVENTS', 'SignatureError',
           'WebhookVerifier', 'events_blueprint', 'socketio_auth', 'user_room']
