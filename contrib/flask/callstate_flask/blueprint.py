"""The routes the React app calls, as the signed-in user (current_user(), the app's own
authentication), each one call of callstate's API:

  POST /calls                 {"callees", "kind"?, "chat_id"?, "metadata"?}  201 {call, token, url, token_expires_at}
  POST /calls/<id>/accept     200 {call, token, url, token_expires_at}
  POST /calls/<id>/decline    200 call
  POST /calls/<id>/leave      200 call
  POST /calls/<id>/token      200 {token, url, token_expires_at}
  GET  /calls                 ?status&limit&cursor: 200 {calls, next_cursor}, the user's history

callstate's 4xx pass through as they are (403 not a member, 404, 409 ...); its 401 (a wrong
service token) and 5xx are the backend's trouble, not the browser's: 502."""
import flask

from .client import CallstateError


def _error(status, code, message):
    return flask.jsonify({'error': {'code': code, 'message': message}}), status


def calls_blueprint(client, current_user, display_name=None, name='callstate'):
    """current_user() -> the signed-in user's id, or None (401). display_name(user), if given,
    names the user in their LiveKit tokens."""
    bp = flask.Blueprint(name, __name__)

    def named(user):
        return display_name(user) if display_name else None

    @bp.before_request
    def authenticate():
        flask.g.callstate_user = current_user()
        if not flask.g.callstate_user:
            return _error(401, 'unauthorized', 'sign in first')
        return None

    @bp.errorhandler(CallstateError)
    def callstate_failed(e):
        if 400 <= e.status < 500 and e.status != 401:
            return _error(e.status, e.code, e.message)
        flask.current_app.logger.error('callstate: %s (request %s)', e, e.request_id)
        return _error(502, 'unavailable', 'the call service failed')

    def body():
        b = flask.request.get_json(silent=True)
        return b if isinstance(b, dict) else {}

    @bp.post('/calls')
    def start():
        b, me = body(), flask.g.callstate_user
        answer = client.create_call(
            me, b.get('callees', []), kind=b.get('kind', 'audio'), chat_id=b.get('chat_id'),
            caller_name=named(me), metadata=b.get('metadata'),
            idempotency_key=flask.request.headers.get('Idempotency-Key'))
        return flask.jsonify(answer), 201

    @bp.post('/calls/<call_id>/accept')
    def accept(call_id):
        me = flask.g.callstate_user
        return flask.jsonify(client.accept(call_id, me, named(me)))

    @bp.post('/calls/<call_id>/decline')
    def decline(call_id):
        return flask.jsonify(client.decline(call_id, flask.g.callstate_user))

    @bp.post('/calls/<call_id>/leave')
    def leave(call_id):
        return flask.jsonify(client.leave(call_id, flask.g.callstate_user))

    @bp.post('/calls/<call_id>/token')
    def token(call_id):
        me = flask.g.callstate_user
        return flask.jsonify(client.token(call_id, me, named(me)))

    @bp.get('/calls')
    def history():
        args = flask.request.args
        return flask.jsonify(client.user_calls(flask.g.callstate_user, args.get('status'),
                                               args.get('limit'), args.get('cursor')))

    return bp
