/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the net device model (dev_net.c) gives the net stages: acl, police
 * and capture see each frame once, on the device's home reactor, in the
 * chain's order in both directions (ios_chain_run): req->u.net says which
 * way it goes and where its Ethernet bytes are, lent for the call (a stage
 * that keeps any copies them, as capture does into its ring), and
 * req->t_start when it reached the io-server. A stage passes a frame or
 * drops it at once; none holds one.
 */
#ifndef VRIO_IOSERVER_STAGE_NET_H
#define VRIO_IOSERVER_STAGE_NET_H

#include "ioserver_internal.h"

/* A stage's request op ends with this to drop the frame: counted for the
 * stage under `why`; the frame goes no further (IOS_STAGE_END). */
enum ios_stage_verdict ios_net_stage_drop(struct ios_stage *st, struct ios_req *req,
					  enum ios_stage_drop why);

#endif
