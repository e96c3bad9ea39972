"""The whole thing in one Flask app: the React app's routes under /api, Socket.IO with a room
per user, and callstate's events either pushed to /callstate/events (CALLSTATE_EVENTS_SECRET
set, the same whsec_ key as callstate's) or long-polled by a relay thread.

  PYTHONPATH=contrib/flask CALLSTATE_URL=http://127.0.0.1:8080 CALLSTATE_TOKEN=... \
      python3 contrib/flask/example_app.py
"""
import os

import flask
from flask_socketio import SocketIO

from callstate_flask import (CallstateClient, EventFanout, EventRelay, calls_blueprint,
                             events_blueprint, socketio_auth)


def current_user():
    """The app's own authentication goes here: this example trusts its session cookie."""
    return flask.session.get('user')


def create_app(callstate_url, callstate_token, events_secret=None):
    """(app, socketio, relay): relay is None when events are pushed, else not yet started."""
    app = flask.Flask(__name__)
    app.secret_key = os.environ.get('SECRET_KEY') or os.urandom(32)
    socketio = SocketIO(app)

    @app.post('/login')
    def login():  # stands in for the chat app's real sign-in: it trusts whoever asks
        flask.session['user'] = flask.request.get_json()['user']
        return '', 204

    client = CallstateClient(callstate_url, callstate_token)
    app.register_blueprint(calls_blueprint(client, current_user), url_prefix='/api')
    socketio_auth(socketio, current_user)
    fanout = EventFanout(socketio)
    if events_secret:
        app.register_blueprint(events_blueprint(fanout, events_secret))
        return app, socketio, None
    return app, socketio, EventRelay(client, fanout)


if __name__ == '__main__':
    app, socketio, relay = create_app(os.environ['CALLSTATE_URL'], os.environ['CALLSTATE_TOKEN'],
                                      os.environ.get('CALLSTATE_EVENTS_SECRET'))
    if relay:
        relay.start()
    # Werkzeug's server is for trying it out. In this threading mode Socket.IO runs over HTTP
    # long-polling: Debian 12 packages no simple-websocket for WebSocket.
    socketio.run(app, port=int(os.environ.get('PORT', '5000')), allow_unsafe_werkzeug=True)
