#include "common/grpc_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <grpcpp/support/client_interceptor.h>

#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/security.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"

namespace grail {

namespace {

// Adds "authorization: Bearer <token>" to every call's initial metadata.
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(std::string header) : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  std::string header_;
};

class BearerTokenInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(std::string token) : header_("Bearer " + std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(header_);
  }

 private:
  std::string header_;
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  const SecurityOptions& security = options.security;
  auto credentials = MakeChannelCredentials(security);
  if (security.bearer_token.empty()) return grpc::CreateCustomChannel(options.target, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(security.bearer_token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(options.target, credentials, args,
                                                                 std::move(interceptors));
}

void SetTimeout(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

struct StallWatchdog::State {
  absl::Mutex mu;
  absl::Time last_progress ABSL_GUARDED_BY(mu);
  bool done ABSL_GUARDED_BY(mu) = false;
  bool stalled ABSL_GUARDED_BY(mu) = false;
};

StallWatchdog::StallWatchdog(grpc::ClientContext* context, absl::Duration stall_timeout)
    : state_(std::make_shared<State>()) {
  if (stall_timeout <= absl::ZeroDuration()) return;
  {
    absl::MutexLock lock(&state_->mu);
    state_->last_progress = absl::Now();
  }
  thread_ = std::thread([state = state_, context, stall_timeout] {
    absl::MutexLock lock(&state->mu);
    while (!state->done) {
      const absl::Time due = state->last_progress + stall_timeout;
      if (absl::Now() >= due) {
        state->stalled = true;
        context->TryCancel();
        return;
      }
      state->mu.AwaitWithDeadline(absl::Condition(&state->done), due);
    }
  });
}

StallWatchdog::~StallWatchdog() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->done = true;
  }
  if (thread_.joinable()) thread_.join();
}

void StallWatchdog::Progress() {
  absl::MutexLock lock(&state_->mu);
  state_->last_progress = absl::Now();
}

bool StallWatchdog::stalled() const {
  absl::MutexLock lock(&state_->mu);
  return state_->stalled;
}

absl::StatusOr<bool> CheckServing(grpc::Channel* channel, absl::Duration timeout,
                                  const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  SetTimeout(&context, timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace grail
