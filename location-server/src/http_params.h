// Query parameters of the server's HTTP API as typed values (private to
// locus::server): numbers parsed whole (std::from_chars), flags, the
// output format, and unknown names refused.
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "locus/common/geo.h"
#include "locus/transport/http_server.h"

namespace locus::server {

// A request's query parameters, read into typed values. The first problem
// is kept (error()); a parameter the route does not know is one, so that a
// typo ("radius" for "radius_m") is an error rather than a default.
class Params {
 public:
  Params(const transport::HttpRequest& request, std::initializer_list<std::string_view> known)
      : request_(request) {
    for (const auto& [name, value] : request.params) {
      // format and access_token (an API key, RFC 6750) go with every path.
      bool isKnown = name == "format" || name == "access_token";
      for (std::string_view k : known) isKnown = isKnown || name == k;
      if (!isKnown) {
        std::string takes;
        for (std::string_view k : known) takes += std::string(k) + ", ";
        fail(fmt::format("unknown query parameter {:?} (this path takes {}format)", name, takes));
        return;
      }
    }
    if (auto format = request.param("format")) {
      if (*format == "geojson") {
        geojson_ = true;
      } else if (*format != "json") {
        fail(fmt::format("format must be json or geojson, not {:?}", *format));
      }
    }
  }

  // A finite number; absent leaves `out` as it is unless required.
  void number(std::string_view name, double& out, bool required = false) {
    const auto text = present(name, required);
    if (!text) return;
    double value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || !std::isfinite(value)) {
      return fail(fmt::format("{} must be a number, not {:?}", name, *text));
    }
    out = value;
  }

  // A whole number in 0..UINT32_MAX.
  void whole(std::string_view name, uint32_t& out) {
    const auto text = present(name, false);
    if (!text) return;
    uint32_t value = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size()) {
      return fail(fmt::format("{} must be a whole number, not {:?}", name, *text));
    }
    out = value;
  }

  // WEST,SOUTH,EAST,NORTH (RFC 7946's bbox order, as Leaflet's
  // toBBoxString() writes it).
  void bbox(std::string_view name, geo::Box& out) {
    const auto text = present(name, true);
    if (!text) return;
    double v[4] = {0, 0, 0, 0};
    const char* at = text->data();
    const char* end = text->data() + text->size();
    for (int i = 0; i < 4; ++i) {
      const auto [next, ec] = std::from_chars(at, end, v[i]);
      const bool last = i == 3;
      if (ec != std::errc() || !std::isfinite(v[i]) ||
          (last ? next != end : next == end || *next != ',')) {
        return fail(fmt::format("{} must be WEST,SOUTH,EAST,NORTH, not {:?}", name, *text));
      }
      at = next + 1;
    }
    out = geo::Box{v[1], v[0], v[3], v[2]};
  }

  // `name`, `name=true|1` or `name=false|0`.
  void flag(std::string_view name, bool& out) {
    const auto text = request_.param(name);
    if (!text) return;
    if (text->empty() || *text == "true" || *text == "1") {
      out = true;
    } else if (*text == "false" || *text == "0") {
      out = false;
    } else {
      fail(fmt::format("{} must be true or false, not {:?}", name, *text));
    }
  }

  // Text as it came (percent-decoded); absent leaves `out` as it is.
  void text(std::string_view name, std::string& out) {
    if (const auto value = present(name, false)) out = std::string(*value);
  }

  bool geojson() const { return geojson_; }
  const std::optional<std::string>& error() const { return error_; }

 private:
  std::optional<std::string_view> present(std::string_view name, bool required) {
    auto text = request_.param(name);
    if (!text && required) fail(fmt::format("{} is required", name));
    return text;
  }
  void fail(std::string message) {
    if (!error_) error_ = std::move(message);
  }

  const transport::HttpRequest& request_;
  bool geojson_ = false;
  std::optional<std::string> error_;
};

}  // namespace locus::server
