// Channel arguments every long-lived channel of ours uses.
#ifndef PS_COMMON_CHANNEL_ARGS_H_
#define PS_COMMON_CHANNEL_ARGS_H_

#include "grpcpp/support/channel_arguments.h"

namespace ps {

// gRPC's reconnect backoff grows to 120 s by default, so a daemon restarted after a
// crash would be reached minutes later. Ours retries a lost connection after 100 ms,
// growing to at most 1 s. Loopback and cluster networks make the extra attempts cheap.
// GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is 1 s, not 100 ms: gRPC also takes it as the
// time a connection attempt may last, and 100 ms aborted handshakes ("tcp handshaker
// shutdown") on a loaded machine; its default (20 s) left a restarted coordinator
// unreached for about 10 s.
inline grpc::ChannelArguments FastReconnectChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

}  // namespace ps

#endif  // PS_COMMON_CHANNEL_ARGS_H_
