/* Unit tests of config_load: defaults, the precedence of the five sources, the config file's
 * syntax, and one row per validation rule checking the exact one-line message, which must
 * name the setting and never carry a secret. Hermetic: the environment is a local array. */
#include <civetweb.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* Distinctive values, so that a message can be searched for them. */
#define SECRET "topsecret-Zq81"
#define SERVICE_TOKEN "svc-token-Xk29"
#define REQUIRED "LIVEKIT_API_KEY=APIkey", "LIVEKIT_API_SECRET=" SECRET, \
	"CALLSTATE_SERVICE_TOKENS=" SERVICE_TOKEN

static char dir[64];
static char msg[512];

static void make_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/callstate-config-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		char path[512];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

TestSuite(config, .init = make_dir, .fini = remove_dir);

/* Writes text to dir/name and returns the path (static storage, one per name slot). */
static const char *write_file(const char *name, const char *text)
{
	static char paths[8][512];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, sizeof paths[0], "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static enum err load(struct config *cfg, const char *config_path, char **env)
{
	return config_load(cfg, config_path, env, msg, sizeof msg);
}

static void assert_no_secret(void)
{
	cr_assert_null(strstr(msg, SECRET), "%s", msg);
	cr_assert_null(strstr(msg, SERVICE_TOKEN), "%s", msg);
	cr_assert_null(strchr(msg, '\n'), "one line: %s", msg);
}

Test(config, defaults)
{
	char *env[] = {REQUIRED, NULL};
	struct config c;
	cr_assert_eq(load(&c, NULL, env), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.livekit_url, "ws://localhost:7880");
	cr_assert_str_eq(c.api_key.key, "APIkey");
	cr_assert_str_eq(c.api_key.secret, SECRET);
	cr_assert_eq(c.n_extra_keys, 0);
	cr_assert_str_eq(c.db_url, "sqlite:callstate.db");
	cr_assert_eq(c.db_pool, 8);
	cr_assert(c.db_prepared);
	cr_assert_str_eq(c.listen_host, "127.0.0.1");
	cr_assert_eq(c.listen_port, 8080);
	cr_assert_eq(c.threads, 1536);
	cr_assert_eq(c.idle_timeout_ms, 10000);
	cr_assert_eq(c.request_timeout_ms, 10000);
	cr_assert_eq(c.long_polls, 256);
	cr_assert_eq(c.n_service_tokens, 1);
	cr_assert_str_eq(c.service_tokens[0], SERVICE_TOKEN);
	cr_assert_eq(c.n_admin_tokens, 0);
	cr_assert_eq(c.ring_timeout_s, 45);
	cr_assert_eq(c.join_timeout_s, 60);
	cr_assert_eq(c.token_ttl_s, 600);
	cr_assert_eq(c.max_body_bytes, 65536);
	cr_assert_eq(c.retention_days, 0, "keeps everything unless asked");
	config_finish(&c);
	config_finish(&c); /* a finished struct is zeroed, so finishing again is harmless */
}

Test(config, every_setting_from_env)
{
	char *env[] = {REQUIRED,
		       "LIVEKIT_URL=wss://lk.example.com",
		       "LIVEKIT_KEYS=old: oldsecret",
		       "CALLSTATE_DB=postgresql://u:p@db/callstate",
		       "CALLSTATE_DB_POOL=1024",
		       "CALLSTATE_DB_PREPARED=off",
		       "CALLSTATE_LISTEN=0.0.0.0:9000",
		       "CALLSTATE_THREADS=16384",
		       "CALLSTATE_IDLE_TIMEOUT_MS=100",
		       "CALLSTATE_REQUEST_TIMEOUT_MS=600000",
		       "CALLSTATE_LONG_POLLS=16384",
		       "CALLSTATE_ADMIN_TOKENS=adm1,adm2",
		       "CALLSTATE_RING_TIMEOUT_S=5",
		       "CALLSTATE_JOIN_TIMEOUT_S=3600",
		       "CALLSTATE_TOKEN_TTL_S=86400",
		       "CALLSTATE_MAX_BODY_BYTES=16777216",
		       "CALLSTATE_RETENTION_DAYS=36500",
		       "UNRELATED_VARIABLE=whatever",
		       "CALLSTATE_UNKNOWN_IN_ENV=ignored",
		       NULL};
	struct config c;
	cr_assert_eq(load(&c, NULL, env), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.livekit_url, "wss://lk.example.com");
	cr_assert_eq(c.n_extra_keys, 1);
	cr_assert_str_eq(c.db_url, "postgresql://u:p@db/callstate");
	cr_assert_eq(c.db_pool, 1024);
	cr_assert_not(c.db_prepared);
	cr_assert_str_eq(c.listen_host, "0.0.0.0");
	cr_assert_eq(c.listen_port, 9000);
	cr_assert_eq(c.threads, 16384);
	cr_assert_eq(c.idle_timeout_ms, 100);
	cr_assert_eq(c.request_timeout_ms, 600000);
	cr_assert_eq(c.long_polls, 16384);
	cr_assert_eq(c.n_admin_tokens, 2);
	cr_assert_str_eq(c.admin_tokens[1], "adm2");
	cr_assert_eq(c.ring_timeout_s, 5);
	cr_assert_eq(c.join_timeout_s, 3600);
	cr_assert_eq(c.token_ttl_s, 86400);
	cr_assert_eq(c.max_body_bytes, 16777216);
	cr_assert_eq(c.retention_days, 36500);
	config_finish(&c);
}

/* [IPv6]:PORT is for a CivetWeb built with IPv6; Debian's is not, and says so at once rather
 * than after the database is migrated. */
Test(config, ipv6_listen_needs_civetweb_with_ipv6)
{
	char *env[] = {REQUIRED, "CALLSTATE_LISTEN=[::1]:9000", NULL};
	struct config c = {0};
	enum err e = load(&c, NULL, env);
	if (mg_check_feature(8)) {
		cr_assert_eq(e, ERR_OK, "%s", msg);
		cr_assert_str_eq(c.listen_host, "::1");
	} else {
		cr_assert_eq(e, ERR_INVALID);
		cr_assert_str_eq(msg, "CALLSTATE_LISTEN: this CivetWeb is built without IPv6: listen "
				      "on an IPv4 address");
	}
	config_finish(&c);
}

Test(config, file_then_env_precedence)
{
	const char *path = write_file("callstate.conf", "CALLSTATE_THREADS = 8\n"
							"CALLSTATE_RING_TIMEOUT_S = 30\n"
							"LIVEKIT_API_KEY = filekey\n");
	char *env[] = {"CALLSTATE_THREADS=16", REQUIRED, NULL};
	struct config c;
	cr_assert_eq(load(&c, path, env), ERR_OK, "%s", msg);
	cr_assert_eq(c.threads, 16, "env beats the file");
	cr_assert_eq(c.ring_timeout_s, 30, "the file beats the default");
	cr_assert_str_eq(c.api_key.key, "APIkey");
	cr_assert_eq(c.join_timeout_s, 60, "the default stays");
	config_finish(&c);
}

/* All five sources of one setting at once; each is then removed from the top. */
Test(config, five_sources_in_order)
{
	const char *name_file = write_file("threads_env_file", "2\n");
	char creds[512];
	snprintf(creds, sizeof creds, "%s/creds", dir);
	cr_assert_eq(mkdir(creds, 0700), 0);
	char creds_file[600];
	snprintf(creds_file, sizeof creds_file, "%s/CALLSTATE_THREADS", creds);
	FILE *f = fopen(creds_file, "w");
	fputs("3\n", f);
	fclose(f);
	const char *conf = write_file("c.conf", "CALLSTATE_THREADS = 4\n");

	char env_name[] = "CALLSTATE_THREADS=1";
	char env_file[600], env_creds[600];
	snprintf(env_file, sizeof env_file, "CALLSTATE_THREADS_FILE=%s", name_file);
	snprintf(env_creds, sizeof env_creds, "CREDENTIALS_DIRECTORY=%s", creds);
	char *env[] = {env_name, env_file, env_creds, REQUIRED, NULL};
	struct config c;

	static const int want[] = {1, 2, 3, 4};
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(load(&c, conf, env + i), ERR_OK, "%s", msg);
		cr_assert_eq(c.threads, want[i], "with %d sources removed", i);
		config_finish(&c);
	}
	cr_assert_eq(load(&c, NULL, env + 3), ERR_OK, "%s", msg);
	cr_assert_eq(c.threads, 1536);
	config_finish(&c);
	unlink(creds_file);
	rmdir(creds);
}

Test(config, name_file_strips_one_newline)
{
	const char *one = write_file("secret1", "from-file\n");
	const char *two = write_file("secret2", "two-newlines\n\n");
	char e1[600], e2[600];
	snprintf(e1, sizeof e1, "LIVEKIT_API_SECRET_FILE=%s", one);
	snprintf(e2, sizeof e2, "LIVEKIT_API_SECRET_FILE=%s", two);
	char *env1[] = {e1, "LIVEKIT_API_KEY=k", "CALLSTATE_SERVICE_TOKENS=t", NULL};
	char *env2[] = {e2, "LIVEKIT_API_KEY=k", "CALLSTATE_SERVICE_TOKENS=t", NULL};
	struct config c;
	cr_assert_eq(load(&c, NULL, env1), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.api_key.secret, "from-file");
	config_finish(&c);
	cr_assert_eq(load(&c, NULL, env2), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.api_key.secret, "two-newlines\n");
	config_finish(&c);
}

Test(config, name_file_in_config_file)
{
	const char *secret = write_file("secret", "conf-file-secret");
	char text[700];
	snprintf(text, sizeof text, "LIVEKIT_API_KEY = k\nLIVEKIT_API_SECRET_FILE = %s\n"
				    "CALLSTATE_SERVICE_TOKENS = t\n", secret);
	const char *conf = write_file("c.conf", text);
	char *env[] = {NULL};
	struct config c;
	cr_assert_eq(load(&c, conf, env), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.api_key.secret, "conf-file-secret");
	config_finish(&c);
}

Test(config, credentials_directory)
{
	write_file("LIVEKIT_API_SECRET", "cred-secret\n");
	write_file("CALLSTATE_SERVICE_TOKENS", "cred-token-1,cred-token-2");
	const char *conf = write_file("c.conf", "LIVEKIT_API_SECRET = file-secret\n"
						"CALLSTATE_THREADS = 9\n");
	char creds[600];
	snprintf(creds, sizeof creds, "CREDENTIALS_DIRECTORY=%s", dir);
	char *env[] = {creds, "LIVEKIT_API_KEY=k", NULL};
	struct config c;
	cr_assert_eq(load(&c, conf, env), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.api_key.secret, "cred-secret", "a credential beats the config file");
	cr_assert_eq(c.n_service_tokens, 2);
	cr_assert_str_eq(c.service_tokens[1], "cred-token-2");
	cr_assert_eq(c.threads, 9, "no credential: the config file still counts");
	config_finish(&c);
}

Test(config, config_file_syntax)
{
	const char *conf = write_file("c.conf", "# callstate settings\n"
						"\n"
						"   \t\n"
						"  # an indented comment = not a setting\n"
						"\tCALLSTATE_THREADS\t=\t 12  \r\n"
						"LIVEKIT_API_KEY=k\n"
						"LIVEKIT_API_SECRET = a=b=c\n"
						"CALLSTATE_SERVICE_TOKENS = t1 , t2\n"
						"CALLSTATE_ADMIN_TOKENS =\n"
						"CALLSTATE_RING_TIMEOUT_S = 10\n"
						/* no final newline */
						"CALLSTATE_RING_TIMEOUT_S = 20");
	char *env[] = {NULL};
	struct config c;
	cr_assert_eq(load(&c, conf, env), ERR_OK, "%s", msg);
	cr_assert_eq(c.threads, 12);
	cr_assert_str_eq(c.api_key.secret, "a=b=c");
	cr_assert_eq(c.n_service_tokens, 2);
	cr_assert_str_eq(c.service_tokens[0], "t1");
	cr_assert_str_eq(c.service_tokens[1], "t2");
	cr_assert_eq(c.n_admin_tokens, 0);
	cr_assert_eq(c.ring_timeout_s, 20, "the last line wins");
	config_finish(&c);
}

Test(config, config_file_errors)
{
	char *env[] = {REQUIRED, NULL};
	struct config c;
	char want[700];

	const char *conf = write_file("typo.conf", "# ok\nCALLSTATE_THREAD = 4\n");
	cr_assert_eq(load(&c, conf, env), ERR_INVALID);
	snprintf(want, sizeof want, "CALLSTATE_THREAD: unknown setting (%s line 2)", conf);
	cr_assert_str_eq(msg, want);

	conf = write_file("typo2.conf", "CALLSTATE_THREADS_FIEL = 4\n");
	cr_assert_eq(load(&c, conf, env), ERR_INVALID);
	cr_assert_eq(strncmp(msg, "CALLSTATE_THREADS_FIEL: unknown setting", 39), 0, "%s", msg);

	conf = write_file("noeq.conf", "CALLSTATE_THREADS 4\n");
	cr_assert_eq(load(&c, conf, env), ERR_INVALID);
	snprintf(want, sizeof want, "%s line 1: expected NAME = value", conf);
	cr_assert_str_eq(msg, want);

	/* a line that is not a setting is never echoed: it may be a stray secret */
	conf = write_file("stray.conf", SECRET "\n");
	cr_assert_eq(load(&c, conf, env), ERR_INVALID);
	assert_no_secret();

	snprintf(want, sizeof want, "%s/missing.conf", dir);
	cr_assert_eq(load(&c, want, env), ERR_INVALID);
	cr_assert_eq(strncmp(msg, "--config: cannot read file ", 27), 0, "%s", msg);
	cr_assert_not_null(strstr(msg, ": No such file or directory"), "%s", msg);
}

Test(config, livekit_keys)
{
	char *env[] = {"LIVEKIT_KEYS= k1: s1 ,k2:s2,\tk3 :  s:3  ", REQUIRED, NULL};
	struct config c;
	cr_assert_eq(load(&c, NULL, env), ERR_OK, "%s", msg);
	cr_assert_eq(c.n_extra_keys, 3);
	cr_assert_str_eq(c.extra_keys[0].key, "k1");
	cr_assert_str_eq(c.extra_keys[0].secret, "s1");
	cr_assert_str_eq(c.extra_keys[1].key, "k2");
	cr_assert_str_eq(c.extra_keys[1].secret, "s2");
	cr_assert_str_eq(c.extra_keys[2].key, "k3");
	cr_assert_str_eq(c.extra_keys[2].secret, "s:3", "split at the first colon");
	config_finish(&c);
}

/* 33 tokens: one over CONFIG_MAX_TOKENS. 17 keys: one over CONFIG_MAX_KEYS. */
Test(config, list_limits)
{
	char tokens[600] = "CALLSTATE_SERVICE_TOKENS=", keys[600] = "LIVEKIT_KEYS=";
	for (int i = 0; i < 33; i++) {
		size_t n = strlen(tokens);
		snprintf(tokens + n, sizeof tokens - n, "%stok%d", i ? "," : "", i);
	}
	for (int i = 0; i < 17; i++) {
		size_t n = strlen(keys);
		snprintf(keys + n, sizeof keys - n, "%sk%d: s%d", i ? "," : "", i, i);
	}
	struct config c;
	char *env1[] = {tokens, REQUIRED, NULL};
	cr_assert_eq(load(&c, NULL, env1), ERR_INVALID);
	cr_assert_str_eq(msg, "CALLSTATE_SERVICE_TOKENS: at most 32 tokens");
	char *env2[] = {keys, REQUIRED, NULL};
	cr_assert_eq(load(&c, NULL, env2), ERR_INVALID);
	cr_assert_str_eq(msg, "LIVEKIT_KEYS: at most 16 keys");

	/* exactly at the limits */
	*strrchr(tokens, ',') = '\0';
	*strrchr(keys, ',') = '\0';
	char *env3[] = {tokens, keys, REQUIRED, NULL};
	cr_assert_eq(load(&c, NULL, env3), ERR_OK, "%s", msg);
	cr_assert_eq(c.n_service_tokens, 32);
	cr_assert_eq(c.n_extra_keys, 16);
	config_finish(&c);
}

struct invalid {
	const char *env[2];
	const char *msg;
};

#define INTEGER(name, lo, hi) name ": must be an integer from " #lo " to " #hi
#define URL_MSG "LIVEKIT_URL: must be a ws://, wss://, http:// or https:// URL"
#define DB_MSG "CALLSTATE_DB: must be sqlite:PATH, postgresql://... or postgres://..."
#define LISTEN_MSG "CALLSTATE_LISTEN: must be HOST:PORT or [IPv6]:PORT"
#define PORT_MSG "CALLSTATE_LISTEN: port must be an integer from 1 to 65535"
#define HOST_MSG "CALLSTATE_LISTEN: HOST must be an IPv4 address"
#define KEYS_MSG(n) "LIVEKIT_KEYS: entry " #n " must be key: secret, both non-empty"

/* Two 24-byte keys, base64: 24 bytes is the least Standard Webhooks allows. */
#define KEY_A "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define KEY_B "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
#define EVENTS_URL_MSG "CALLSTATE_EVENTS_URL: must be an http:// or https:// URL with a host"
#define EVENTS_KEY_MSG(i) \
	"CALLSTATE_EVENTS_SECRET: key " #i " must be whsec_ and the base64 of 24 to 64 bytes"

static const struct invalid invalid[] = {
	{{"CALLSTATE_EVENTS_URL=ftp://hooks.example.com/x", "CALLSTATE_EVENTS_SECRET=" KEY_A},
	 EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=http://", "CALLSTATE_EVENTS_SECRET=" KEY_A}, EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=https://:443/x", "CALLSTATE_EVENTS_SECRET=" KEY_A}, EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=http://h:0/x", "CALLSTATE_EVENTS_SECRET=" KEY_A}, EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=http://h:99999/x", "CALLSTATE_EVENTS_SECRET=" KEY_A}, EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=http://u:pw@h/x", "CALLSTATE_EVENTS_SECRET=" KEY_A}, EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=http://h/x#frag", "CALLSTATE_EVENTS_SECRET=" KEY_A}, EVENTS_URL_MSG},
	{{"CALLSTATE_EVENTS_URL=http://h/x"},
	 "CALLSTATE_EVENTS_SECRET: required with CALLSTATE_EVENTS_URL"},
	{{"CALLSTATE_EVENTS_SECRET=MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, EVENTS_KEY_MSG(1)},
	{{"CALLSTATE_EVENTS_SECRET=whsec_"}, EVENTS_KEY_MSG(1)},
	{{"CALLSTATE_EVENTS_SECRET=whsec_AAECAwQFBgcICQoLDA0ODxAREhMU"}, EVENTS_KEY_MSG(1)}, /* 21 */
	{{"CALLSTATE_EVENTS_SECRET=" KEY_A " whsec_!!!!"}, EVENTS_KEY_MSG(2)},
	{{"CALLSTATE_EVENTS_SECRET=" KEY_A "," KEY_B "," KEY_A}, "CALLSTATE_EVENTS_SECRET: at most 2 keys"},
	{{"LIVEKIT_API_KEY="}, "LIVEKIT_API_KEY: required"},
	{{"LIVEKIT_API_SECRET="}, "LIVEKIT_API_SECRET: required"},
	{{"CALLSTATE_SERVICE_TOKENS="}, "CALLSTATE_SERVICE_TOKENS: required"},
	{{"LIVEKIT_URL=ftp://lk.example.com"}, URL_MSG},
	{{"LIVEKIT_URL=ws://"}, URL_MSG},
	{{"LIVEKIT_URL=wss://lk example.com"}, URL_MSG},
	{{"LIVEKIT_URL=lk.example.com:7880"}, URL_MSG},
	{{"LIVEKIT_URL="}, URL_MSG},
	{{"LIVEKIT_KEYS=k1"}, KEYS_MSG(1)},
	{{"LIVEKIT_KEYS=k1: s1, k2"}, KEYS_MSG(2)},
	{{"LIVEKIT_KEYS=k1:  "}, KEYS_MSG(1)},
	{{"LIVEKIT_KEYS= : s1"}, KEYS_MSG(1)},
	{{"LIVEKIT_KEYS=k1: s1,"}, "LIVEKIT_KEYS: entry 2 is empty"},
	{{"LIVEKIT_KEYS=k1: s1, k1: s2"}, "LIVEKIT_KEYS: key k1 is given twice"},
	{{"CALLSTATE_DB=mysql://db/x"}, DB_MSG},
	{{"CALLSTATE_DB=sqlite:"}, DB_MSG},
	{{"CALLSTATE_DB=postgresql://"}, DB_MSG},
	{{"CALLSTATE_DB=callstate.db"}, DB_MSG},
	{{"CALLSTATE_DB_FILE=/nonexistent/db-url"},
	 "CALLSTATE_DB: cannot read file /nonexistent/db-url: No such file or directory"},
	{{"CALLSTATE_DB_FILE=/"}, "CALLSTATE_DB: cannot read file /: Is a directory"},
	{{"CALLSTATE_DB_POOL=0"}, INTEGER("CALLSTATE_DB_POOL", 1, 1024)},
	{{"CALLSTATE_DB_POOL=1025"}, INTEGER("CALLSTATE_DB_POOL", 1, 1024)},
	{{"CALLSTATE_DB_PREPARED=yes"}, "CALLSTATE_DB_PREPARED: must be on or off"},
	{{"CALLSTATE_DB_PREPARED="}, "CALLSTATE_DB_PREPARED: must be on or off"},
	{{"CALLSTATE_LISTEN=8080"}, LISTEN_MSG},
	{{"CALLSTATE_LISTEN=:8080"}, LISTEN_MSG},
	{{"CALLSTATE_LISTEN=::1:8080"}, LISTEN_MSG},
	{{"CALLSTATE_LISTEN=[::1]8080"}, LISTEN_MSG},
	{{"CALLSTATE_LISTEN=[]:8080"}, LISTEN_MSG},
	{{"CALLSTATE_LISTEN=[::1:8080"}, LISTEN_MSG},
	{{"CALLSTATE_LISTEN=999.1.1.1:8080"}, HOST_MSG},
	{{"CALLSTATE_LISTEN=1.2.3:8080"}, HOST_MSG},
	{{"CALLSTATE_LISTEN=localhost:8080"}, HOST_MSG},
	{{"CALLSTATE_LISTEN=127.0.0.1:0"}, PORT_MSG},
	{{"CALLSTATE_LISTEN=127.0.0.1:65536"}, PORT_MSG},
	{{"CALLSTATE_LISTEN=127.0.0.1:"}, PORT_MSG},
	{{"CALLSTATE_LISTEN=127.0.0.1:80x"}, PORT_MSG},
	{{"CALLSTATE_THREADS=0"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS=16385"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS=8x"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS= 8"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS=-1"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS=+8"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS="}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_THREADS=99999999999999999999999"}, INTEGER("CALLSTATE_THREADS", 1, 16384)},
	{{"CALLSTATE_IDLE_TIMEOUT_MS=99"}, INTEGER("CALLSTATE_IDLE_TIMEOUT_MS", 100, 3600000)},
	{{"CALLSTATE_IDLE_TIMEOUT_MS=3600001"}, INTEGER("CALLSTATE_IDLE_TIMEOUT_MS", 100, 3600000)},
	{{"CALLSTATE_REQUEST_TIMEOUT_MS=99"}, INTEGER("CALLSTATE_REQUEST_TIMEOUT_MS", 100, 600000)},
	{{"CALLSTATE_REQUEST_TIMEOUT_MS=600001"},
	 INTEGER("CALLSTATE_REQUEST_TIMEOUT_MS", 100, 600000)},
	{{"CALLSTATE_LONG_POLLS=0"}, INTEGER("CALLSTATE_LONG_POLLS", 1, 16384)},
	{{"CALLSTATE_LONG_POLLS=16385"}, INTEGER("CALLSTATE_LONG_POLLS", 1, 16384)},
	{{"CALLSTATE_SERVICE_TOKENS=a,,b"}, "CALLSTATE_SERVICE_TOKENS: entry 2 is empty"},
	{{"CALLSTATE_SERVICE_TOKENS=a, "}, "CALLSTATE_SERVICE_TOKENS: entry 2 is empty"},
	{{"CALLSTATE_SERVICE_TOKENS=a,b c"},
	 "CALLSTATE_SERVICE_TOKENS: token 2 has a space or a control character"},
	{{"CALLSTATE_ADMIN_TOKENS=,"}, "CALLSTATE_ADMIN_TOKENS: entry 1 is empty"},
	{{"CALLSTATE_RING_TIMEOUT_S=4"}, INTEGER("CALLSTATE_RING_TIMEOUT_S", 5, 300)},
	{{"CALLSTATE_RING_TIMEOUT_S=301"}, INTEGER("CALLSTATE_RING_TIMEOUT_S", 5, 300)},
	{{"CALLSTATE_JOIN_TIMEOUT_S=4"}, INTEGER("CALLSTATE_JOIN_TIMEOUT_S", 5, 3600)},
	{{"CALLSTATE_JOIN_TIMEOUT_S=3601"}, INTEGER("CALLSTATE_JOIN_TIMEOUT_S", 5, 3600)},
	{{"CALLSTATE_TOKEN_TTL_S=59"}, INTEGER("CALLSTATE_TOKEN_TTL_S", 60, 86400)},
	{{"CALLSTATE_TOKEN_TTL_S=86401"}, INTEGER("CALLSTATE_TOKEN_TTL_S", 60, 86400)},
	{{"CALLSTATE_MAX_BODY_BYTES=1023"}, INTEGER("CALLSTATE_MAX_BODY_BYTES", 1024, 16777216)},
	{{"CALLSTATE_MAX_BODY_BYTES=16777217"},
	 INTEGER("CALLSTATE_MAX_BODY_BYTES", 1024, 16777216)},
	{{"CALLSTATE_RETENTION_DAYS=-1"}, INTEGER("CALLSTATE_RETENTION_DAYS", 0, 36500)},
	{{"CALLSTATE_RETENTION_DAYS=36501"}, INTEGER("CALLSTATE_RETENTION_DAYS", 0, 36500)},
	{{"CALLSTATE_RETENTION_DAYS=30d"}, INTEGER("CALLSTATE_RETENTION_DAYS", 0, 36500)},
};

Test(config, each_invalid_value_names_its_setting)
{
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		const struct invalid *row = &invalid[i];
		char *env[6] = {0};
		size_t n = 0;
		for (size_t k = 0; k < 2 && row->env[k]; k++)
			env[n++] = (char *)row->env[k];
		char *required[] = {REQUIRED};
		for (size_t k = 0; k < 3; k++)
			env[n++] = required[k]; /* after the row's own: the first occurrence wins */

		struct config c = {.threads = -7};
		cr_assert_eq(load(&c, NULL, env), ERR_INVALID, "%s was accepted", row->env[0]);
		cr_assert_str_eq(msg, row->msg, "for %s", row->env[0]);
		cr_assert_eq(c.threads, -7, "the output is only set on success");
		assert_no_secret();
	}
}

/* Invalid secret-bearing values must not be echoed in the message. */
Test(config, invalid_secrets_are_not_echoed)
{
	static const char *const rows[][2] = {
		{"LIVEKIT_KEYS=k1 Sup3rSecretA", "Sup3rSecretA"},
		{"CALLSTATE_SERVICE_TOKENS=Sup3r SecretB", "Sup3r"},
		{"CALLSTATE_ADMIN_TOKENS=Sup3rSecretC\x01", "Sup3rSecretC"},
		{"CALLSTATE_DB=mysql://u:Sup3rSecretD@db/x", "Sup3rSecretD"},
		{"LIVEKIT_URL=Sup3rSecretF", "Sup3rSecretF"},
		{"CALLSTATE_EVENTS_SECRET=whsec_Sup3rSecretG", "Sup3rSecretG"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *env[] = {(char *)rows[i][0], REQUIRED, NULL};
		struct config c;
		cr_assert_eq(load(&c, NULL, env), ERR_INVALID, "%s", rows[i][0]);
		cr_assert_null(strstr(msg, rows[i][1]), "%s", msg);
	}
}

/* Push: the URL split into its parts, and one or two keys decoded, in either separator. */
Test(config, events_settings)
{
	char *env[] = {"CALLSTATE_EVENTS_URL=https://Hooks.example.com:8443/in?x=1",
		       "CALLSTATE_EVENTS_SECRET= " KEY_A ", " KEY_B " ", REQUIRED, NULL};
	struct config c;
	cr_assert_eq(load(&c, NULL, env), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.events_url, "https://Hooks.example.com:8443/in?x=1");
	cr_assert_eq(c.n_events_keys, 2);
	cr_assert_eq(c.events_keys[0].len, 24);
	cr_assert_eq(c.events_keys[1].len, 24);
	for (unsigned char b = 0; b < 24; b++)
		cr_assert_eq(c.events_keys[1].bytes[b], b, "KEY_B is the bytes 0..23");
	struct events_target t;
	cr_assert(config_events_target(c.events_url, &t));
	cr_assert(t.tls);
	cr_assert_str_eq(t.host, "Hooks.example.com");
	cr_assert_eq(t.port, 8443);
	cr_assert_str_eq(t.path, "/in?x=1");
	config_finish(&c);

	cr_assert(config_events_target("http://[::1]/", &t));
	cr_assert(!t.tls);
	cr_assert_str_eq(t.host, "::1");
	cr_assert_eq(t.port, 80);
	cr_assert_str_eq(t.path, "/");
	cr_assert(config_events_target("HTTP://h?q", &t));
	cr_assert_str_eq(t.path, "/?q");

	char *off[] = {"CALLSTATE_EVENTS_SECRET=" KEY_A, REQUIRED, NULL};
	cr_assert_eq(load(&c, NULL, off), ERR_OK, "%s", msg);
	cr_assert_str_eq(c.events_url, "", "push is off without the URL");
	cr_assert_eq(c.n_events_keys, 1);
	config_finish(&c);
}

Test(config, finish_accepts_zeroed)
{
	struct config c = {0};
	config_finish(&c);
	cr_assert_null(c.livekit_url);
}
