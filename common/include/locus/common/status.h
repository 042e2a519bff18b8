// Expected failures as values: a typed error, and Result<T> = T or an error.
#pragma once

#include <kj/debug.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace locus {

// Mirrors wire::ErrorCode in locus.capnp.
enum class ErrorCode {
  kBadRequest,
  kNotFound,
  kTimeout,
  kUnavailable,
  kOverloaded,
  kInternal,
  kUnauthenticated,  // no credentials, or ones that do not verify
  kForbidden,        // valid credentials that do not allow this
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // one line a person can act on
};

inline Error badRequest(std::string message) {
  return Error{ErrorCode::kBadRequest, std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() {
    KJ_REQUIRE(ok(), "value() of an error", std::get<1>(v_).message.c_str());
    return std::get<0>(v_);
  }
  const T& value() const {
    KJ_REQUIRE(ok(), "value() of an error", std::get<1>(v_).message.c_str());
    return std::get<0>(v_);
  }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const {
    KJ_REQUIRE(!ok(), "error() of a value");
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

}  // namespace locus
