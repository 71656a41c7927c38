// Status helpers for abseil 20220623, which has no status macros of its own.
#ifndef PS_COMMON_STATUS_H_
#define PS_COMMON_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define PS_RETURN_IF_ERROR(expr)                       \
  do {                                                 \
    ::absl::Status ps_status_ = (expr);                \
    if (!ps_status_.ok()) return ps_status_;           \
  } while (false)

#define PS_STATUS_CONCAT_INNER_(a, b) a##b
#define PS_STATUS_CONCAT_(a, b) PS_STATUS_CONCAT_INNER_(a, b)

// `PS_ASSIGN_OR_RETURN(T x, StatusOrExpr);` declares or assigns `x` from the value of
// the absl::StatusOr, or returns its status from the enclosing function.
#define PS_ASSIGN_OR_RETURN(lhs, expr) \
  PS_ASSIGN_OR_RETURN_IMPL_(PS_STATUS_CONCAT_(ps_statusor_, __LINE__), lhs, expr)

#define PS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).status();  \
  lhs = std::move(tmp).value()

namespace ps {

// Prefixes the message of a non-OK status with `context: `, keeping its code.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace ps

#endif  // PS_COMMON_STATUS_H_
