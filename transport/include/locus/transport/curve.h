// ZeroMQ CURVE between the gateway/server and the units (SPEC "Security"):
// the links to a unit are encrypted and authenticated, and a unit admits
// only the client keys it lists, so a unit port reachable from the network
// lets no one else read or write. The cryptography is libzmq's (CurveZMQ,
// over libsodium); keys are Z85 text, as ZeroMQ writes them.
//
// Who holds which key:
//   - the units share one keypair, the cluster's unit key (--curve-key on
//     each unit); its public half is what clients expect to talk to
//     (--unit-public-key on the gateway and the server);
//   - the gateway and the server each have a keypair of their own
//     (--curve-key), listed in the units' --curve-clients, as is the unit
//     key itself (a unit copies from its peers when it catches up).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "locus/common/log.h"
#include "locus/common/metrics.h"
#include "locus/common/status.h"

namespace locus::transport {

struct CurveKeypair {
  std::string publicKey;  // Z85, 40 characters
  std::string secretKey;  // Z85, 40 characters
};

// A fresh keypair (zmq_curve_keypair).
CurveKeypair newCurveKeypair();
// A keypair file: lines "public Z85" and "secret Z85" ('#' comments), mode
// 600. `locus keygen` writes one, and its public half in PATH.pub.
Result<CurveKeypair> loadCurveKeypair(const std::string& path);
std::string curveKeypairText(const CurveKeypair& keys);
// A public key file: one Z85 key (the first word of its first non-comment
// line), e.g. a PATH.pub that `locus keygen` wrote.
Result<std::string> loadCurvePublicKey(const std::string& path);
// A unit's --curve-clients file: one public key per line, '#' comments.
Result<std::set<std::string>> loadCurveClients(const std::string& path);

// What a process presents when it connects to a unit: its own keypair and
// the unit key it expects.
struct UnitLinkKeys {
  CurveKeypair client;
  std::string unitPublicKey;
};

// Makes every socket toward a unit opened on `context` (UnitChannel,
// UnitClient, a unit's catch-up copier) use CURVE with `keys`, for as long
// as this object lives. The keys belong to the context rather than to each
// channel because a process has one identity toward its units, and every
// part that talks to them shares the context.
class UnitLinkCredentials {
 public:
  UnitLinkCredentials(zmq::context_t& context, UnitLinkKeys keys);
  ~UnitLinkCredentials();
  UnitLinkCredentials(const UnitLinkCredentials&) = delete;
  UnitLinkCredentials& operator=(const UnitLinkCredentials&) = delete;

 private:
  void* context_;
};

// The credentials the flags --curve-key (a keypair file) and
// --unit-public-key (the unit key's public half) name, registered for
// `context`; null when both are empty. Throws std::runtime_error with the
// reason when a file cannot be read. Precondition: both or neither set
// (checkUnitLinkFlags).
std::unique_ptr<UnitLinkCredentials> unitLinksFromFiles(zmq::context_t& context,
                                                        const std::string& curveKey,
                                                        const std::string& unitPublicKey);
// Why the two flags cannot work together, or nothing.
std::optional<std::string> checkUnitLinkFlags(const std::string& curveKey,
                                              const std::string& unitPublicKey);

// Sets CURVE on a socket about to connect to a unit, when `context` has
// UnitLinkCredentials; else leaves it plain.
void secureUnitSocket(zmq::context_t& context, zmq::socket_t& socket);

// The unit side: a ZAP handler (ZeroMQ RFC 27) on `context` that admits a
// CURVE client only if its public key is in the --curve-clients file,
// reloaded on reload(). Every refusal is counted and logged (at most once a
// second, with how many since). Thread-affinity: its own thread; reload()
// and the counter from any thread.
class CurveGate {
 public:
  // The ZAP domain the unit's ROUTER socket names.
  static constexpr const char* kDomain = "locus-unit";

  // Throws std::runtime_error when the file cannot be read.
  CurveGate(zmq::context_t& context, std::string clientsFile);
  ~CurveGate();
  CurveGate(const CurveGate&) = delete;
  CurveGate& operator=(const CurveGate&) = delete;

  // Reads the clients file again; on failure keeps the list and logs why.
  void reload();
  size_t clients() const;
  const metrics::Counter& refused() const { return refused_; }

 private:
  void serve();

  std::string file_;
  mutable std::mutex mutex_;
  std::set<std::string> allowed_;  // Z85 public keys
  metrics::Counter refused_;
  ThrottledLog refusals_{std::chrono::seconds(1)};  // serve()'s thread only
  std::unique_ptr<zmq::socket_t> socket_;           // REP on inproc://zeromq.zap.01
  zmq::socket_t stopper_;                           // PAIR: wakes serve() to stop
  std::string stopEndpoint_;
  std::thread thread_;
};

// Makes a unit's ROUTER socket a CURVE server with the unit's keypair, its
// clients checked by the CurveGate of its context. Before bind().
void makeCurveServer(zmq::socket_t& socket, const CurveKeypair& unitKeys);

}  // namespace locus::transport
