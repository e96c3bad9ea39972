#pragma once
#include <stdbool.h>

/* Makes every TLS handshake in which this process is the client check that the server's
 * certificate names host (a DNS name, or an IPv4/IPv6 address in text), on top of the chain
 * check against the CA file. Process-wide and set once at start-up, before any connection. */
bool tls_name_require(const char *host);
