/* Bearer-token roles. Tokens are kept only as SHA-256 digests and compared digest to digest
 * with CRYPTO_memcmp over the whole table, so neither the time taken nor the memory kept
 * reveals a token or which entry matched. */
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "sha256.h"

static enum err add_tokens(struct auth *a, char *const *tokens, size_t n, enum role role)
{
	for (size_t i = 0; i < n; i++) {
		if (a->n >= sizeof a->entries / sizeof a->entries[0])
			return ERR_INVALID;
		struct auth_entry *en = &a->entries[a->n++];
		sha256(tokens[i], strlen(tokens[i]), en->digest);
		en->role = role;
	}
	return ERR_OK;
}

enum err auth_init(struct auth *a, const struct config *cfg)
{
	memset(a, 0, sizeof *a);
	enum err e = add_tokens(a, cfg->admin_tokens, cfg->n_admin_tokens, ROLE_ADMIN);
	if (e == ERR_OK)
		e = add_tokens(a, cfg->service_tokens, cfg->n_service_tokens, ROLE_SERVICE);
	return e;
}

enum role auth_role(const struct auth *a, const char *header)
{
	static const char prefix[] = "Bearer ";
	if (!header || strncasecmp(header, prefix, sizeof prefix - 1) != 0)
		return ROLE_NONE;
	const char *token = header + sizeof prefix - 1;
	while (*token == ' ')
		token++;
	if (!*token)
		return ROLE_NONE;
	unsigned char digest[AUTH_DIGEST_LEN];
	sha256(token, strlen(token), digest);
	enum role best = ROLE_NONE;
	for (size_t i = 0; i < a->n; i++) {
		/* Branch-free on the secret: keep the highest role of any matching entry. */
		unsigned match = CRYPTO_memcmp(digest, a->entries[i].digest, sizeof digest) == 0;
		unsigned higher = a->entries[i].role > best;
		best = (enum role)((match & higher) ? a->entries[i].role : best);
	}
	return best;
}
