/* The configuration file parser, on whatever a file may hold. The first byte picks whether the
 * required settings come from the environment (so the file's other lines are all applied) or
 * must come from the file too. A loaded configuration must hold what the rest of the service
 * relies on; a refused one must say why in one line naming something. */
#define _GNU_SOURCE /* memfd_create */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "worker_stack.h"

static void one(const uint8_t *data, size_t size)
{
	if (size < 1)
		return;
	int fd = memfd_create("callstate.conf", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	char *with_env[] = {"LIVEKIT_API_KEY=k", "LIVEKIT_API_SECRET=s",
			    "CALLSTATE_SERVICE_TOKENS=t", NULL};
	char *without_env[] = {NULL};
	struct config cfg;
	char msg[512];
	enum err e = config_load(&cfg, path, (data[0] & 1) ? with_env : without_env, msg, sizeof msg);
	close(fd);
	if (e == ERR_OK) {
		if (!cfg.api_key.key || !cfg.api_key.secret || !cfg.n_service_tokens ||
		    cfg.threads < 1 || cfg.listen_port < 1 || cfg.listen_port > 65535 ||
		    !cfg.db_url || !cfg.livekit_url)
			abort();
		config_finish(&cfg);
	} else if (e == ERR_INVALID && (!msg[0] || strchr(msg, '\n'))) {
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* A NAME_FILE line may name any path; none may block a run (stdin is libFuzzer's). */
	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0)
		abort();
	close(null);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_worker_stack(one, data, size);
	return 0;
}
