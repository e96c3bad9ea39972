/* Settings: one table row per name, each value resolved through the sources of API.md
 * (environment, NAME_FILE, systemd credentials, the --config file, the default), then parsed
 * and range-checked into struct config. Errors name the setting, never echo a value. */
#include "config.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>

#define SECRET_FILE_MAX ((size_t)64 * 1024)
#define CONFIG_FILE_MAX ((size_t)1024 * 1024)
#define NAME_BUF 64

struct setting;
/* Parses value into cfg; on ERR_INVALID writes the reason (without the value) into why. */
typedef enum err (*apply_fn)(struct config *cfg, const struct setting *s, const char *value,
			     char *why, size_t why_cap);

struct setting {
	const char *name;
	const char *def;     /* NULL: required */
	apply_fn apply;
	size_t offset;       /* the field in struct config */
	size_t count_offset; /* token lists: their size_t count */
	long min, max;       /* integers */
};

/* Every raw value may be a secret, so each is wiped before it is freed. */
static void free_secret(char *s)
{
	if (s)
		OPENSSL_clear_free(s, strlen(s));
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims s[0..*n) in place: returns the new start and shortens *n. */
static char *trim(char *s, size_t *n)
{
	while (*n && is_space(*s)) {
		s++;
		(*n)--;
	}
	while (*n && is_space(s[*n - 1]))
		(*n)--;
	return s;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* read_file's own failures, beside errno values. */
#define READ_TOO_LARGE (-1)
#define READ_HAS_NUL (-2)

static int errno_or_eio(void)
{
	return errno ? errno : EIO;
}

/* Reads a whole file as a C string: 0, an errno value or READ_*. Reads to EOF rather than
 * trusting st_size, so pipes and /proc-style files work too; the buffer grows as it fills, so a
 * small file costs a small buffer. Every buffer is wiped before it is freed (secrets). */
static int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno_or_eio();
	/* One byte more than max tells a file over the limit; one more again holds the NUL. */
	size_t limit = max + 2, cap = 4096 < limit ? 4096 : limit, len = 0;
	char *buf = malloc(cap);
	int e = buf ? 0 : ENOMEM;
	while (e == 0 && len <= max) {
		if (len + 1 == cap) {
			size_t grown_cap = cap * 2 < limit ? cap * 2 : limit;
			char *grown = malloc(grown_cap);
			if (!grown) {
				e = ENOMEM;
				break;
			}
			memcpy(grown, buf, len);
			OPENSSL_clear_free(buf, cap);
			buf = grown;
			cap = grown_cap;
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r > 0)
			len += (size_t)r;
		else if (r == 0)
			break;
		else if (errno != EINTR)
			e = errno_or_eio();
	}
	close(fd);
	if (e == 0 && len > max)
		e = READ_TOO_LARGE;
	if (e == 0 && memchr(buf, '\0', len))
		e = READ_HAS_NUL;
	if (e) {
		if (buf)
			OPENSSL_clear_free(buf, cap);
		return e;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void describe_read_error(char *why, size_t cap, const char *path, int e)
{
	char reason[128];
	if (e == READ_TOO_LARGE)
		snprintf(reason, sizeof reason, "too large");
	else if (e == READ_HAS_NUL)
		snprintf(reason, sizeof reason, "contains a NUL byte");
	else if (strerror_r(e, reason, sizeof reason) != 0)
		snprintf(reason, sizeof reason, "error %d", e);
	snprintf(why, cap, "cannot read file %s: %s", path, reason);
}

/* Strict decimal: digits only (no sign, space or suffix) within [min, max]. */
static bool parse_long(const char *s, long min, long max, long *ret)
{
	long v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		/* v <= max <= 16777216 here, so this cannot overflow */
		v = v * 10 + (*s - '0');
		if (v > max)
			return false;
	}
	if (v < min)
		return false;
	*ret = v;
	return true;
}

/* Visible ASCII only: what a URL or a bearer token can hold. */
static bool all_visible(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	}
	return true;
}

/* True when v is scheme://something for one of the NULL-terminated schemes (any case). */
static bool is_url(const char *v, const char *const *schemes)
{
	if (!all_visible(v, strlen(v)))
		return false;
	for (; *schemes; schemes++) {
		size_t n = strlen(*schemes);
		if (strncasecmp(v, *schemes, n) == 0 && v[n])
			return true;
	}
	return false;
}

static enum err store_string(struct config *cfg, const struct setting *s, const char *v)
{
	char **field = (char **)((char *)cfg + s->offset);
	*field = strdup(v);
	return *field ? ERR_OK : ERR_NOMEM;
}

static enum err set_url(struct config *cfg, const struct setting *s, const char *v, char *why,
			size_t cap)
{
	static const char *const schemes[] = {"ws://", "wss://", "http://", "https://", NULL};
	if (!is_url(v, schemes)) {
		snprintf(why, cap, "must be a ws://, wss://, http:// or https:// URL");
		return ERR_INVALID;
	}
	return store_string(cfg, s, v);
}

static enum err set_string(struct config *cfg, const struct setting *s, const char *v,
			   char *why, size_t cap)
{
	(void)why;
	(void)cap;
	return store_string(cfg, s, v);
}

static enum err set_db(struct config *cfg, const struct setting *s, const char *v, char *why,
		       size_t cap)
{
	static const char *const pg[] = {"postgresql://", "postgres://", NULL};
	if (!(strncmp(v, "sqlite:", 7) == 0 && v[7]) && !is_url(v, pg)) {
		snprintf(why, cap, "must be sqlite:PATH, postgresql://... or postgres://...");
		return ERR_INVALID;
	}
	return store_string(cfg, s, v);
}

static enum err set_listen(struct config *cfg, const struct setting *s, const char *v,
			   char *why, size_t cap)
{
	(void)s;
	const char *host = v, *host_end, *colon;
	long port;

	if (*v == '[') {
		host = v + 1;
		host_end = strchr(host, ']');
		colon = host_end && host_end[1] == ':' ? host_end + 1 : NULL;
	} else {
		colon = strrchr(v, ':');
		host_end = colon;
		/* a bare IPv6 address: its last group could be the port */
		if (colon && memchr(host, ':', (size_t)(colon - host)))
			colon = NULL;
	}
	if (!colon || host_end == host || !all_visible(host, (size_t)(host_end - host))) {
		snprintf(why, cap, "must be HOST:PORT or [IPv6]:PORT");
		return ERR_INVALID;
	}
	if (!parse_long(colon + 1, 1, 65535, &port)) {
		snprintf(why, cap, "port must be an integer from 1 to 65535");
		return ERR_INVALID;
	}
	cfg->listen_host = dup_n(host, (size_t)(host_end - host));
	if (!cfg->listen_host)
		return ERR_NOMEM;
	cfg->listen_port = (int)port;
	/* CivetWeb takes addresses only (it reads 999.1.1.1 as 231.1.1.1), and IPv6 ones only
	 * when built with IPv6, which Debian's is not. */
	unsigned char addr[sizeof(struct in6_addr)];
	enum { CIVETWEB_FEATURE_IPV6 = 8 };
	if (*v == '[' && !mg_check_feature(CIVETWEB_FEATURE_IPV6)) {
		snprintf(why, cap, "this CivetWeb is built without IPv6: listen on an IPv4 address");
		return ERR_INVALID;
	}
	if (inet_pton(*v == '[' ? AF_INET6 : AF_INET, cfg->listen_host, addr) != 1) {
		snprintf(why, cap, *v == '[' ? "not an IPv6 address" : "HOST must be an IPv4 address");
		return ERR_INVALID;
	}
	return ERR_OK;
}

static bool parse_range(const struct setting *s, const char *v, long *ret, char *why,
			size_t cap)
{
	if (parse_long(v, s->min, s->max, ret))
		return true;
	snprintf(why, cap, "must be an integer from %ld to %ld", s->min, s->max);
	return false;
}

static enum err set_long(struct config *cfg, const struct setting *s, const char *v, char *why,
			 size_t cap)
{
	long n;
	if (!parse_range(s, v, &n, why, cap))
		return ERR_INVALID;
	*(long *)((char *)cfg + s->offset) = n;
	return ERR_OK;
}

static enum err set_bool(struct config *cfg, const struct setting *s, const char *v, char *why,
			 size_t cap)
{
	bool *field = (bool *)((char *)cfg + s->offset);
	if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
		*field = v[1] == 'n';
		return ERR_OK;
	}
	snprintf(why, cap, "must be on or off");
	return ERR_INVALID;
}

static enum err set_int(struct config *cfg, const struct setting *s, const char *v, char *why,
			size_t cap)
{
	long n;
	if (!parse_range(s, v, &n, why, cap))
		return ERR_INVALID;
	*(int *)((char *)cfg + s->offset) = (int)n; /* every int setting's max fits an int */
	return ERR_OK;
}

/* Calls fn on each comma-separated entry of v, trimmed (the i-th from 1). An empty entry is
 * an error: a stray comma is more likely a typo than an intent. */
typedef enum err (*entry_fn)(struct config *cfg, const struct setting *s, size_t i, char *entry,
			     size_t n, char *why, size_t cap);

static enum err each_entry(struct config *cfg, const struct setting *s, const char *v,
			   entry_fn fn, char *why, size_t cap)
{
	size_t vlen = strlen(v);
	char *copy = dup_n(v, vlen);
	enum err e = copy ? ERR_OK : ERR_NOMEM;
	char *p = copy;

	for (size_t i = 1; e == ERR_OK && vlen > 0; i++) {
		char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char *entry = trim(p, &n);
		if (n == 0) {
			snprintf(why, cap, "entry %zu is empty", i);
			e = ERR_INVALID;
			break;
		}
		entry[n] = '\0';
		e = fn(cfg, s, i, entry, n, why, cap);
		if (!comma)
			break;
		p = comma + 1;
	}
	if (copy)
		OPENSSL_clear_free(copy, vlen + 1);
	return e;
}

static enum err add_token(struct config *cfg, const struct setting *s, size_t i, char *t,
			  size_t n, char *why, size_t cap)
{
	char **list = (char **)((char *)cfg + s->offset);
	size_t *count = (size_t *)((char *)cfg + s->count_offset);

	if (!all_visible(t, n)) {
		snprintf(why, cap, "token %zu has a space or a control character", i);
		return ERR_INVALID;
	}
	if (*count == CONFIG_MAX_TOKENS) {
		snprintf(why, cap, "at most %d tokens", CONFIG_MAX_TOKENS);
		return ERR_INVALID;
	}
	list[*count] = strdup(t);
	if (!list[*count])
		return ERR_NOMEM;
	(*count)++;
	return ERR_OK;
}

static enum err set_tokens(struct config *cfg, const struct setting *s, const char *v,
			   char *why, size_t cap)
{
	return each_entry(cfg, s, v, add_token, why, cap);
}

/* One "key: secret" pair of LIVEKIT_KEYS, the LiveKit server's own format. */
static enum err add_key(struct config *cfg, const struct setting *s, size_t i, char *pair,
			size_t n, char *why, size_t cap)
{
	(void)s;
	char *colon = memchr(pair, ':', n);
	size_t key_len = colon ? (size_t)(colon - pair) : 0;
	size_t secret_len = colon ? n - key_len - 1 : 0;
	char *key = trim(pair, &key_len);
	char *secret = colon ? trim(colon + 1, &secret_len) : NULL;

	if (key_len == 0 || secret_len == 0) {
		snprintf(why, cap, "entry %zu must be key: secret, both non-empty", i);
		return ERR_INVALID;
	}
	key[key_len] = '\0';
	for (size_t k = 0; k < cfg->n_extra_keys; k++) {
		if (strcmp(cfg->extra_keys[k].key, key) == 0) {
			snprintf(why, cap, "key %.64s is given twice", key);
			return ERR_INVALID;
		}
	}
	if (cfg->n_extra_keys == CONFIG_MAX_KEYS) {
		snprintf(why, cap, "at most %d keys", CONFIG_MAX_KEYS);
		return ERR_INVALID;
	}
	struct api_key *k = &cfg->extra_keys[cfg->n_extra_keys];
	k->key = strdup(key);
	k->secret = dup_n(secret, secret_len);
	if (!k->key || !k->secret) {
		free(k->key);
		free_secret(k->secret);
		*k = (struct api_key){0};
		return ERR_NOMEM;
	}
	cfg->n_extra_keys++;
	return ERR_OK;
}

static enum err set_keys(struct config *cfg, const struct setting *s, const char *v, char *why,
			 size_t cap)
{
	return each_entry(cfg, s, v, add_key, why, cap);
}

bool config_events_target(const char *url, struct events_target *ret)
{
	static const char *const schemes[] = {"http://", "https://", NULL};
	if (!is_url(url, schemes))
		return false;
	struct events_target t = {.tls = strncasecmp(url, "https://", 8) == 0};
	const char *authority = url + (t.tls ? 8 : 7);
	size_t len = strcspn(authority, "/?#");
	const char *end = authority + len, *name = authority, *after;
	if (*authority == '[') { /* an IPv6 address */
		const char *bracket = memchr(authority, ']', len);
		if (!bracket)
			return false;
		name = authority + 1;
		after = bracket + 1;
	} else {
		after = memchr(authority, ':', len);
		after = after ? after : end;
	}
	size_t name_len = (size_t)((*authority == '[' ? after - 1 : after) - name);
	long port = t.tls ? 443 : 80;
	char digits[8];
	size_t n_digits = after < end ? (size_t)(end - after - 1) : 0;
	if (after < end && (*after != ':' || n_digits == 0 || n_digits >= sizeof digits))
		return false;
	if (after < end) {
		memcpy(digits, after + 1, n_digits);
		digits[n_digits] = '\0';
		if (!parse_long(digits, 1, 65535, &port))
			return false;
	}
	if (name_len == 0 || name_len >= sizeof t.host || memchr(name, '@', name_len) ||
	    strchr(end, '#') || strlen(end) + 1 >= sizeof t.path)
		return false;
	memcpy(t.host, name, name_len);
	t.host[name_len] = '\0';
	t.port = (int)port;
	snprintf(t.path, sizeof t.path, "%s%s", *end == '/' ? "" : "/", end);
	*ret = t;
	return true;
}

static enum err set_events_url(struct config *cfg, const struct setting *s, const char *v,
			       char *why, size_t cap)
{
	struct events_target t;
	if (*v && !config_events_target(v, &t)) {
		snprintf(why, cap, "must be an http:// or https:// URL with a host");
		return ERR_INVALID;
	}
	return store_string(cfg, s, v);
}

/* One whsec_<base64> key of CALLSTATE_EVENTS_SECRET: 24 to 64 bytes, as Standard Webhooks
 * asks of a signing key. */
static enum err add_events_key(struct config *cfg, size_t i, const char *k, size_t n, char *why,
			       size_t cap)
{
	static const char prefix[] = "whsec_";
	size_t p = sizeof prefix - 1, b64 = n > p ? n - p : 0;
	unsigned char out[CONFIG_EVENTS_KEY_MAX + 3];
	if (cfg->n_events_keys == CONFIG_EVENTS_KEYS) {
		snprintf(why, cap, "at most %d keys", CONFIG_EVENTS_KEYS);
		return ERR_INVALID;
	}
	if (n <= p || strncmp(k, prefix, p) != 0 || b64 % 4 || b64 / 4 * 3 > sizeof out) {
		snprintf(why, cap, "key %zu must be whsec_ and the base64 of 24 to 64 bytes", i);
		return ERR_INVALID;
	}
	int len = EVP_DecodeBlock(out, (const unsigned char *)k + p, (int)b64);
	size_t pad = (k[n - 1] == '=') + (k[n - 2] == '=');
	if (len < 0 || (size_t)len - pad < 24 || (size_t)len - pad > CONFIG_EVENTS_KEY_MAX) {
		OPENSSL_cleanse(out, sizeof out);
		snprintf(why, cap, "key %zu must be whsec_ and the base64 of 24 to 64 bytes", i);
		return ERR_INVALID;
	}
	struct events_key *key = &cfg->events_keys[cfg->n_events_keys++];
	memcpy(key->bytes, out, (size_t)len - pad);
	key->len = (size_t)len - pad;
	OPENSSL_cleanse(out, sizeof out);
	return ERR_OK;
}

/* One key, or two for a rotation, separated by spaces or commas (the Standard Webhooks
 * libraries list several signatures with spaces). */
static enum err set_events_secret(struct config *cfg, const struct setting *s, const char *v,
				  char *why, size_t cap)
{
	(void)s;
	enum err e = ERR_OK;
	for (size_t i = 1; e == ERR_OK && *v; i++) {
		v += strspn(v, " \t,");
		size_t n = strcspn(v, " \t,");
		if (n)
			e = add_events_key(cfg, i, v, n, why, cap);
		v += n;
	}
	return e;
}

/* Whether path holds PEM certificates OpenSSL can load, as CivetWeb's client will. */
static bool has_certificates(const char *path)
{
	X509_STORE *store = X509_STORE_new();
	bool ok = store && X509_STORE_load_file(store, path) == 1;
	X509_STORE_free(store);
	return ok;
}

#define FIELD(f) offsetof(struct config, f)
#define S(n, d, fn) .name = (n), .def = (d), .apply = (fn)
#define INT(f, lo, hi) .offset = FIELD(f), .min = (lo), .max = (hi)

static const struct setting settings[] = {
	{S("LIVEKIT_URL", "ws://localhost:7880", set_url), .offset = FIELD(livekit_url)},
	{S("LIVEKIT_API_KEY", NULL, set_string), .offset = FIELD(api_key.key)},
	{S("LIVEKIT_API_SECRET", NULL, set_string), .offset = FIELD(api_key.secret)},
	{S("LIVEKIT_KEYS", "", set_keys)},
	{S("CALLSTATE_DB", "sqlite:callstate.db", set_db), .offset = FIELD(db_url)},
	{S("CALLSTATE_DB_POOL", "8", set_int), INT(db_pool, 1, 1024)},
	{S("CALLSTATE_DB_PREPARED", "on", set_bool), .offset = FIELD(db_prepared)},
	{S("CALLSTATE_LISTEN", "127.0.0.1:8080", set_listen)},
	{S("CALLSTATE_THREADS", "1536", set_int), INT(threads, 1, 16384)},
	{S("CALLSTATE_IDLE_TIMEOUT_MS", "10000", set_int), INT(idle_timeout_ms, 100, 3600000)},
	{S("CALLSTATE_REQUEST_TIMEOUT_MS", "10000", set_int), INT(request_timeout_ms, 100, 600000)},
	{S("CALLSTATE_LONG_POLLS", "256", set_int), INT(long_polls, 1, 16384)},
	{S("CALLSTATE_SERVICE_TOKENS", NULL, set_tokens), .offset = FIELD(service_tokens),
	 .count_offset = FIELD(n_service_tokens)},
	{S("CALLSTATE_ADMIN_TOKENS", "", set_tokens), .offset = FIELD(admin_tokens),
	 .count_offset = FIELD(n_admin_tokens)},
	{S("CALLSTATE_RING_TIMEOUT_S", "45", set_int), INT(ring_timeout_s, 5, 300)},
	{S("CALLSTATE_JOIN_TIMEOUT_S", "60", set_int), INT(join_timeout_s, 5, 3600)},
	{S("CALLSTATE_TOKEN_TTL_S", "600", set_int), INT(token_ttl_s, 60, 86400)},
	{S("CALLSTATE_MAX_BODY_BYTES", "65536", set_long), INT(max_body_bytes, 1024, 16777216)},
	{S("CALLSTATE_RETENTION_DAYS", "0", set_int), INT(retention_days, 0, RETENTION_DAYS_MAX)},
	{S("CALLSTATE_EVENTS_URL", "", set_events_url), .offset = FIELD(events_url)},
	{S("CALLSTATE_EVENTS_SECRET", "", set_events_secret)},
	{S("CALLSTATE_EVENTS_CA_FILE", "/etc/ssl/certs/ca-certificates.crt", set_string),
	 .offset = FIELD(events_ca_file)},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

/* The value of name in an environ-style array, or NULL. */
static const char *env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);
	for (; env && *env; env++) {
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	}
	return NULL;
}

static const struct setting *find_setting(const char *name, size_t n)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (strlen(settings[i].name) == n && strncmp(settings[i].name, name, n) == 0)
			return &settings[i];
	}
	return NULL;
}

/* The config file's say on one setting: the last line that named it, as NAME or NAME_FILE. */
struct file_value {
	const char *value; /* points into the file's text */
	bool is_path;
};

static bool is_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return n > 0;
}

/* Splits text (the file's contents, modified in place) into file_values, one per setting. */
static enum err parse_config_file(const char *path, char *text, struct file_value *values,
				  char *msgbuf, size_t msgcap)
{
	char *line = text;
	for (int lineno = 1; line; lineno++) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char *next = nl ? nl + 1 : NULL;
		char *l = trim(line, &n);
		line = next;
		if (n == 0 || *l == '#')
			continue;

		char *eq = memchr(l, '=', n);
		size_t name_len = eq ? (size_t)(eq - l) : 0;
		size_t value_len = eq ? n - name_len - 1 : 0;
		char *name = trim(l, &name_len);
		char *value = eq ? trim(eq + 1, &value_len) : NULL;
		if (!eq || !is_name(name, name_len)) {
			snprintf(msgbuf, msgcap, "%s line %d: expected NAME = value", path, lineno);
			return ERR_INVALID;
		}
		bool is_path = name_len > 5 && strncmp(name + name_len - 5, "_FILE", 5) == 0;
		size_t base_len = is_path ? name_len - 5 : name_len;
		const struct setting *s = find_setting(name, base_len);
		if (!s) {
			int shown = (int)(name_len > NAME_BUF ? NAME_BUF : name_len);
			snprintf(msgbuf, msgcap, "%.*s: unknown setting (%s line %d)", shown, name,
				 path, lineno);
			return ERR_INVALID;
		}
		value[value_len] = '\0';
		values[s - settings] = (struct file_value){.value = value, .is_path = is_path};
	}
	return ERR_OK;
}

/* Reads a NAME_FILE or credential file: its text less one trailing newline. A missing file
 * with missing_ok leaves *ret_value NULL. */
static enum err read_value_file(const char *path, bool missing_ok, char **ret_value, char *why,
				size_t cap)
{
	char *buf = NULL;
	size_t len = 0;
	int e = read_file(path, SECRET_FILE_MAX, &buf, &len);

	*ret_value = NULL;
	if (e == ENOENT && missing_ok)
		return ERR_OK;
	if (e == ENOMEM)
		return ERR_NOMEM;
	if (e) {
		describe_read_error(why, cap, path, e);
		return ERR_INVALID;
	}
	if (len && buf[len - 1] == '\n')
		buf[len - 1] = '\0';
	*ret_value = buf;
	return ERR_OK;
}

static enum err dup_value(const char *v, char **ret_value)
{
	*ret_value = v ? strdup(v) : NULL;
	return v && !*ret_value ? ERR_NOMEM : ERR_OK;
}

/* The raw value of s by API.md's precedence: env NAME, env NAME_FILE,
 * $CREDENTIALS_DIRECTORY/NAME, the config file, the default (NULL: not set anywhere). */
static enum err resolve(const struct setting *s, char *const *env, const struct file_value *fv,
			char **ret_value, char *why, size_t cap)
{
	char name_file[NAME_BUF];
	const char *v = env_get(env, s->name);
	if (v)
		return dup_value(v, ret_value);

	snprintf(name_file, sizeof name_file, "%s_FILE", s->name);
	v = env_get(env, name_file);
	if (v)
		return read_value_file(v, false, ret_value, why, cap);

	/* A credential that systemd was not asked to pass is simply absent. */
	const char *creds = env_get(env, "CREDENTIALS_DIRECTORY");
	if (creds && *creds) {
		char path[4096];
		if (snprintf(path, sizeof path, "%s/%s", creds, s->name) >= (int)sizeof path) {
			snprintf(why, cap, "CREDENTIALS_DIRECTORY is too long");
			return ERR_INVALID;
		}
		enum err e = read_value_file(path, true, ret_value, why, cap);
		if (e != ERR_OK || *ret_value)
			return e;
	}

	if (fv->value && fv->is_path)
		return read_value_file(fv->value, false, ret_value, why, cap);
	return dup_value(fv->value ? fv->value : s->def, ret_value);
}

static enum err load(struct config *cfg, const char *config_path, char *const *env,
		     char *text, char *msgbuf, size_t msgcap)
{
	struct file_value values[N_SETTINGS] = {0};
	char why[512];
	enum err e = ERR_OK;

	if (text)
		e = parse_config_file(config_path, text, values, msgbuf, msgcap);
	for (size_t i = 0; e == ERR_OK && i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		char *v = NULL;
		why[0] = '\0';
		e = resolve(s, env, &values[i], &v, why, sizeof why);
		if (e == ERR_OK && (!v || (!*v && !s->def))) {
			snprintf(why, sizeof why, "required");
			e = ERR_INVALID;
		}
		if (e == ERR_OK)
			e = s->apply(cfg, s, v, why, sizeof why);
		if (e == ERR_INVALID)
			snprintf(msgbuf, msgcap, "%s: %s", s->name, why);
		free_secret(v);
	}
	if (e == ERR_OK && cfg->events_url && *cfg->events_url && cfg->n_events_keys == 0) {
		snprintf(msgbuf, msgcap, "CALLSTATE_EVENTS_SECRET: required with CALLSTATE_EVENTS_URL");
		e = ERR_INVALID;
	}
	struct events_target target;
	if (e == ERR_OK && cfg->events_url && *cfg->events_url &&
	    config_events_target(cfg->events_url, &target) && target.tls &&
	    !has_certificates(cfg->events_ca_file)) {
		snprintf(msgbuf, msgcap,
			 "CALLSTATE_EVENTS_CA_FILE: no PEM certificates to read in %s",
			 cfg->events_ca_file);
		e = ERR_INVALID;
	}
	return e;
}

enum err config_load(struct config *ret_cfg, const char *config_path, char *const *env,
		     char *msgbuf, size_t msgcap)
{
	struct config cfg = {0};
	char *text = NULL;
	size_t len = 0;

	if (msgcap)
		msgbuf[0] = '\0';
	if (config_path) {
		int r = read_file(config_path, CONFIG_FILE_MAX, &text, &len);
		if (r == ENOMEM)
			return ERR_NOMEM;
		if (r) {
			char why[512];
			describe_read_error(why, sizeof why, config_path, r);
			snprintf(msgbuf, msgcap, "--config: %s", why);
			return ERR_INVALID;
		}
	}
	enum err e = load(&cfg, config_path, env, text, msgbuf, msgcap);
	if (text)
		OPENSSL_clear_free(text, len + 1);
	if (e != ERR_OK) {
		if (e == ERR_NOMEM)
			snprintf(msgbuf, msgcap, "out of memory while loading the configuration");
		config_finish(&cfg);
		return e;
	}
	*ret_cfg = cfg;
	return ERR_OK;
}

void config_finish(struct config *cfg)
{
	free(cfg->livekit_url);
	free(cfg->api_key.key);
	free_secret(cfg->api_key.secret);
	for (size_t i = 0; i < cfg->n_extra_keys; i++) {
		free(cfg->extra_keys[i].key);
		free_secret(cfg->extra_keys[i].secret);
	}
	free_secret(cfg->db_url); /* a postgresql:// URL may hold a password */
	free(cfg->listen_host);
	for (size_t i = 0; i < cfg->n_service_tokens; i++)
		free_secret(cfg->service_tokens[i]);
	for (size_t i = 0; i < cfg->n_admin_tokens; i++)
		free_secret(cfg->admin_tokens[i]);
	free(cfg->events_url);
	free(cfg->events_ca_file);
	OPENSSL_cleanse(cfg->events_keys, sizeof cfg->events_keys);
	*cfg = (struct config){0};
}
