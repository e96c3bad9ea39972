/* CivetWeb's client (1.15) checks a server's certificate chain against the CA file it is given
 * but never the server's name, and it exposes neither its SSL_CTX nor its SSL. OpenSSL verifies
 * a server's certificate with the parameters of the connection laid over those of the
 * process-wide "ssl_server" entry of its verification table (X509_STORE_CTX_set_default in
 * ssl_verify_cert_chain), and a host set in that entry is inherited when the connection sets
 * none, as CivetWeb's does not. callstate is a TLS client of one server only, the events
 * receiver, so an entry naming that receiver makes each of its handshakes check the name. */
#include <arpa/inet.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "tls_name.h"

static bool is_address(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

bool tls_name_require(const char *host)
{
	const X509_VERIFY_PARAM *builtin = X509_VERIFY_PARAM_lookup("ssl_server");
	X509_VERIFY_PARAM *param = X509_VERIFY_PARAM_new();
	bool ok = builtin && param && X509_VERIFY_PARAM_set1(param, builtin) == 1 &&
		  X509_VERIFY_PARAM_set1_name(param, "ssl_server") == 1;
	if (ok && is_address(host)) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1;
	} else if (ok) {
		/* The subject alternative names only, as browsers do: no common name fallback. */
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
						       X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
		ok = X509_VERIFY_PARAM_set1_host(param, host, 0) == 1;
	}
	/* The table owns param once added, and frees the entry it replaces. */
	if (ok && X509_VERIFY_PARAM_add0_table(param) == 1)
		return true;
	X509_VERIFY_PARAM_free(param);
	return false;
}
