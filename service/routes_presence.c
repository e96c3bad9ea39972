/* Presence: the chat backend sets a user's status; anyone with the service role reads many
 * users at once, in the order asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"
#include "requests.h"
#include "routes.h"

#define PRESENCE_LIST_MAX 200

static int reply_presence(struct req *r, const struct presence *p)
{
	char *text = presence_to_json_text(p);
	if (!text)
		return reply_error(r, ERR_NOMEM, NULL);
	int rc = reply_json(r, 200, text, strlen(text));
	free(text);
	return rc;
}

int handle_presence_put(struct req *r)
{
	json_t *body = NULL;
	const char *msg = NULL;
	struct presence p;
	enum err e = req_auth(r, ROLE_SERVICE);
	if (e == ERR_OK)
		e = req_user_param(r, &msg);
	if (e == ERR_OK)
		e = req_json_body(r, true, &body, &msg);
	enum presence_status status = PRESENCE_OFFLINE;
	if (e == ERR_OK)
		e = requests_presence_status(body, &status, &msg);
	json_decref(body);
	if (e == ERR_OK)
		e = presence_set(&r->app->calls, r->request_id, r->param, status, &p);
	if (e != ERR_OK)
		return reply_error(r, e, e == ERR_UNAVAILABLE ? NULL : msg);
	return reply_presence(r, &p);
}

/* The users asked: "users" split on commas, then every "user" parameter (for ids with a
 * comma). ret_users point into buf, which holds cap bytes: decoded values are never longer
 * than the query string they come from. */
static enum err asked_users(const struct req *r, char *buf, size_t cap, char **ret_users,
			    size_t *ret_n, const char **ret_msg)
{
	static const char too_many[] = "users: at most 200 user ids";
	static const char bad_value[] =
		"users: the query holds a malformed escape or %00 (user: the same)";
	size_t n = 0, used = 0;
	int len = req_query(r, "users", 0, buf, cap);
	if (len < 0 && len != URI_ABSENT) {
		*ret_msg = bad_value;
		return ERR_INVALID;
	}
	if (len >= 0) {
		used = (size_t)len + 1;
		for (char *s = buf; s; n++) {
			if (n == PRESENCE_LIST_MAX) {
				*ret_msg = too_many;
				return ERR_INVALID;
			}
			ret_users[n] = s;
			s = strchr(s, ',');
			if (s)
				*s++ = '\0';
		}
	}
	for (int k = 0; (len = req_query(r, "user", k, buf + used, cap - used)) != URI_ABSENT;
	     k++) {
		if (len < 0) {
			*ret_msg = bad_value;
			return ERR_INVALID;
		}
		if (n == PRESENCE_LIST_MAX) {
			*ret_msg = too_many;
			return ERR_INVALID;
		}
		ret_users[n++] = buf + used;
		used += (size_t)len + 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!valid_user_id(ret_users[i])) {
			*ret_msg = "users: every entry must be a user id of 1 to 128 bytes without "
				   "control characters";
			return ERR_INVALID;
		}
	}
	if (!n) {
		*ret_msg = "users: at least one user id is required";
		return ERR_INVALID;
	}
	*ret_n = n;
	return ERR_OK;
}

int handle_presence_list(struct req *r)
{
	const char *msg = NULL;
	char *users[PRESENCE_LIST_MAX];
	size_t n = 0;
	enum err e = req_auth(r, ROLE_SERVICE);
	if (e != ERR_OK)
		return reply_error(r, e, NULL);
	size_t cap = (r->ri->query_string ? strlen(r->ri->query_string) : 0) + 2;
	char *buf = malloc(cap);
	if (!buf)
		return reply_error(r, ERR_NOMEM, NULL);
	e = asked_users(r, buf, cap, users, &n, &msg);
	json_t *list = e == ERR_OK ? json_array() : NULL;
	for (size_t i = 0; e == ERR_OK && i < n; i++) {
		struct presence p;
		e = presence_get(&r->app->calls, users[i], &p);
		json_t *item = e == ERR_OK ? presence_to_json(&p) : NULL;
		if (e == ERR_OK && (!item || json_array_append_new(list, item) != 0))
			e = ERR_NOMEM;
	}
	free(buf);
	if (e != ERR_OK) {
		json_decref(list);
		return reply_error(r, e, e == ERR_INVALID ? msg : NULL);
	}
	return reply_json_value(r, 200, json_pack("{s:o}", "presence", list));
}
