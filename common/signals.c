/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include "signals.h"

volatile sig_atomic_t vrio_stop_signal;
volatile sig_atomic_t vrio_reload_signal;

static void on_stop(int sig)
{
	vrio_stop_signal = sig;
}

static void on_reload(int sig)
{
	vrio_reload_signal = 1;
}

int vrio_signals_setup(sigset_t *waitmask)
{
	static const int taken[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -errno;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		sigaddset(&block, taken[i]);
	if (sigprocmask(SIG_BLOCK, &block, waitmask) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		sigdelset(waitmask, taken[i]);
	sa.sa_handler = on_stop;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return -errno;
	sa.sa_handler = on_reload;
	if (sigaction(SIGHUP, &sa, NULL) < 0)
		return -errno;
	return 0;
}
