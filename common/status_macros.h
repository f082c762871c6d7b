#ifndef GRAIL_COMMON_STATUS_MACROS_H_
#define GRAIL_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Abseil 20220623 ships no status_macros.h; these are the two macros every grail library uses.

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                                 \
  do {                                                        \
    ::absl::Status grail_status_ = (expr);                    \
    if (!grail_status_.ok()) return grail_status_;            \
  } while (0)

#define GRAIL_CONCAT_INNER_(a, b) a##b
#define GRAIL_CONCAT_(a, b) GRAIL_CONCAT_INNER_(a, b)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); returns its status if
// not OK, else moves the value into `lhs` (which may be a declaration such as `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  GRAIL_ASSIGN_OR_RETURN_IMPL_(GRAIL_CONCAT_(grail_statusor_, __LINE__), lhs, expr)

#define GRAIL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // GRAIL_COMMON_STATUS_MACROS_H_
