/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A daemon's signals: SIGTERM and SIGINT ask it to stop, SIGHUP to reload,
 * SIGPIPE is ignored. The handlers only set the flags; the signals are
 * blocked in every thread (threads started later inherit the mask) and
 * taken only while the main loop waits in ppoll() with *waitmask, so none
 * lands in the middle of anything.
 */
#ifndef VRIO_COMMON_SIGNALS_H
#define VRIO_COMMON_SIGNALS_H

#include <signal.h>

extern volatile sig_atomic_t vrio_stop_signal;	/* the signal, 0: none */
extern volatile sig_atomic_t vrio_reload_signal;	/* 1: reload asked */

/* Call before any thread starts. 0 or -errno. */
int vrio_signals_setup(sigset_t *waitmask);

#endif
