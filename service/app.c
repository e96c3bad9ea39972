/* Building and tearing down struct app from a loaded configuration. */
#include "app.h"

#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

enum err app_init(struct app *app, const struct config *cfg, struct storage *st)
{
	memset(app, 0, sizeof *app);
	app->cfg = cfg;
	app->st = st;
	enum err e = tokens_signer_init(&app->signer, cfg->api_key.key, cfg->api_key.secret);
	if (e == ERR_OK)
		e = auth_init(&app->auth, cfg);
	if (e == ERR_OK)
		e = webhook_keys_init(&app->webhook_keys, cfg);
	if (e != ERR_OK)
		return e;
	size_t cap = strlen(cfg->livekit_url) * 6 + 3, len = 0;
	app->livekit_url_json = malloc(cap);
	if (!app->livekit_url_json ||
	    !json_append_string(app->livekit_url_json, cap, &len, cfg->livekit_url)) {
		app_finish(app);
		return ERR_NOMEM;
	}
	app->livekit_url_json[len] = '\0';
	app->calls = (struct calls){
		.st = st,
		.signer = &app->signer,
		.clock = clock_system,
		.cfg = {.ring_timeout_s = cfg->ring_timeout_s,
			.join_timeout_s = cfg->join_timeout_s,
			.token_ttl_s = cfg->token_ttl_s,
			.livekit_url = cfg->livekit_url},
	};
	return ERR_OK;
}

void app_finish(struct app *app)
{
	tokens_signer_finish(&app->signer);
	free(app->livekit_url_json);
	app->livekit_url_json = NULL;
}
