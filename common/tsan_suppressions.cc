// Link this target into a binary with linkstatic = True: in a binary whose libraries
// are shared objects, libtsan's weak defaults win over these definitions.
//
// ThreadSanitizer settings for binaries that use Debian's gRPC and abseil, which are
// not built with TSAN: it cannot see their synchronisation (atomics, futexes,
// absl::Mutex inside the libraries) and reports races between pieces of gRPC's own
// header-inline code (instrumented in our binaries) that gRPC orders correctly. Only
// the TSAN runtime reads these functions; other builds ignore them.
//
// Every pattern names a gRPC or abseil internal. TSAN suppresses a report when any
// frame of either stack matches, so a race in our code is hidden only if gRPC's
// internals are on its stack: our reactor callbacks run below some of them
// (CallbackWithSuccessTag::Run, CatchingCallback). The coordinator's own locking is
// checked without gRPC by coordinator_test's concurrency test.
extern "C" const char* __tsan_default_suppressions() {
  return
      // absl::Mutex deadlock detection, guarded by absl's internal SpinLock.
      "race:synchronization_internal::GraphCycles\n"
      // gRPC hands its epoll fd to the poller thread through atomics.
      "race:grpc_event_engine::posix_engine::\n"
      // gRPC's call machinery (grpcpp/impl, grpcpp/support), inline in our code.
      "race:grpc::internal::InterceptorBatchMethodsImpl\n"
      "race:grpc::internal::CallOpSet\n"
      "race:grpc::internal::CallOpSendMessage\n"
      "race:grpc::internal::CallOpSendInitialMetadata\n"
      "race:grpc::internal::CallOpServerSendStatus\n"
      "race:grpc::internal::CallOpRecvMessage\n"
      "race:grpc::internal::CallOpRecvInitialMetadata\n"
      "race:grpc::internal::CallOpClientSendClose\n"
      "race:grpc::internal::CallOpClientRecvStatus\n"
      "race:grpc::internal::CallbackWithSuccessTag\n"
      "race:grpc::internal::CallbackWithStatusTag\n"
      "race:grpc::internal::CatchingCallback\n"
      "race:grpc::internal::ServerCallbackCall::ServerCallbackCall\n"
      "race:grpc::internal::ServerCallbackCall::Unref\n"
      "race:grpc::ServerWriteReactor<ps::JobStatus>::ServerWriteReactor\n"
      "race:grpc::ServerUnaryReactor::ServerUnaryReactor\n"
      "race:grpc::internal::CallbackUnaryHandler\n"
      "race:grpc::ByteBuffer::\n"
      "race:grpc::internal::Call::\n"
      "race:grpc::internal::ServerCallbackCall::\n"
      "race:grpc::ServerUnaryReactor\n"
      "race:grpc::ServerContextBase::\n"
      // Frames inside the uninstrumented libraries themselves.
      "race:libgrpc.so\n"
      "race:libgrpc++.so\n"
      "race:libgpr.so\n"
      // RocksDB (the shards' checkpoint store) orders its threads with atomics.
      "race:librocksdb.so\n"
      // gRPC's own threads (timer, executor) end on its schedule, invisibly to TSAN.
      "thread:grpc_core::Thread::Thread\n";
}

// Memory accesses that interceptors (memcpy, memcmp, ...) make on behalf of the
// uninstrumented system libraries are not checked.
extern "C" const char* __tsan_default_options() {
  return "ignore_noninstrumented_modules=1";
}
