/* Erasure of a user (DELETE /v1/users/{user}/data): their presence is deleted, and wherever a
 * call holds them (its members, sessions and caller, its stored view, its feed events, the
 * LiveKit webhooks of its room) and in their presence events, their id, name and participant
 * metadata become their pseudonym, and their participant attributes are emptied. A batch of
 * calls per transaction, each call under its lock: a repeat after a crash finds only what is
 * left, and the pseudonym is the same each time. */
#pragma once

#include <stddef.h>

#include "err.h"
#include "storage.h"

#define ERASURE_PREFIX "erased:"
#define ERASURE_HEX 16
#define ERASURE_PSEUDONYM_LEN (sizeof ERASURE_PREFIX - 1 + ERASURE_HEX)

/* ret gets "erased:" + the first 16 hex digits of HMAC-SHA256(secret, "erase:" + user).
 * ERR_INTERNAL if OpenSSL fails. */
enum err erasure_pseudonym(const unsigned char *secret, size_t secret_len, const char *user,
			   char ret[ERASURE_PSEUDONYM_LEN + 1]);

/* JSON text of a call, a presence or a LiveKit webhook with user replaced by pseudonym, found
 * by key: the strings of "user", "caller" and "identity" that are exactly user; in each object
 * whose "user" or "identity" is user, its "name" and "metadata" strings (when not empty) and
 * its "attributes" (emptied); and in an object or array under "metadata" (a call's own, free
 * form) every string that is exactly user. Other strings are kept, also those equal to user
 * (a kind, a chat id, another person's name). Texts are parsed (JSON_MAX_DEPTH) and written
 * again, never edited as text. *ret_text is NULL when nothing named the user (text kept as it
 * is, also when it is not JSON), else owned by the caller. */
enum err erasure_rewrite_json(const char *text, const char *user, const char *pseudonym,
			      char **ret_text);
/* The same for free-form JSON (a call's metadata): every string that is exactly user. */
enum err erasure_rewrite_metadata(const char *text, const char *user, const char *pseudonym,
				  char **ret_text);

/* Erase user from everything st holds; *ret_calls_updated counts the calls this run changed
 * (a repeat counts only what an earlier run left). The calls first, then presence, then the
 * presence events of the feed, then storage_scrub. */
enum err erasure_run(struct storage *st, const unsigned char *secret, size_t secret_len,
		     const char *user, size_t *ret_calls_updated);
