#include "locus/transport/curve.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>
#include <zmq_addon.hpp>

#include "locus/common/auth.h"
#include "locus/transport/poll.h"

namespace locus::transport {
namespace {

constexpr size_t kZ85KeyChars = 40;

bool validZ85Key(const std::string& key) {
  if (key.size() != kZ85KeyChars) return false;
  uint8_t bytes[32];
  return zmq_z85_decode(bytes, key.c_str()) != nullptr;
}

// The words of each non-blank, non-comment line of `text`.
std::vector<std::vector<std::string>> wordsOf(const std::string& text) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> l;
    for (std::string w; words >> w;) {
      if (w[0] == '#') break;
      l.push_back(w);
    }
    if (!l.empty()) lines.push_back(std::move(l));
  }
  return lines;
}

Result<std::string> readText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return badRequest("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::mutex registryMutex;
std::map<void*, UnitLinkKeys>& registry() {
  static std::map<void*, UnitLinkKeys> keys;
  return keys;
}

}  // namespace

CurveKeypair newCurveKeypair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    throw std::runtime_error("libzmq has no CURVE (built without libsodium?)");
  }
  return CurveKeypair{pub, sec};
}

std::string curveKeypairText(const CurveKeypair& keys) {
  return fmt::format(
      "# A Locus CURVE keypair (locus keygen); keep it secret.\npublic {}\nsecret {}\n",
      keys.publicKey, keys.secretKey);
}

Result<CurveKeypair> loadCurveKeypair(const std::string& path) {
  auto text = auth::readKeyFile(path);  // refuses a file others can read
  if (!text) return text.error();
  CurveKeypair keys;
  for (const auto& line : wordsOf(*text)) {
    if (line.size() == 2 && line[0] == "public") keys.publicKey = line[1];
    if (line.size() == 2 && line[0] == "secret") keys.secretKey = line[1];
  }
  if (!validZ85Key(keys.publicKey) || !validZ85Key(keys.secretKey)) {
    return badRequest(path + ": expected lines \"public Z85\" and \"secret Z85\" (locus keygen)");
  }
  return keys;
}

Result<std::string> loadCurvePublicKey(const std::string& path) {
  auto text = readText(path);
  if (!text) return text.error();
  const auto lines = wordsOf(*text);
  // A .pub file holds the key alone; a keypair file's "public" line works too.
  for (const auto& line : lines) {
    const std::string& key = line.size() == 2 && line[0] == "public" ? line[1] : line[0];
    if (validZ85Key(key)) return key;
    break;
  }
  return badRequest(path + ": expected a CURVE public key (40 characters of Z85)");
}

Result<std::set<std::string>> loadCurveClients(const std::string& path) {
  auto text = readText(path);
  if (!text) return text.error();
  std::set<std::string> keys;
  size_t number = 0;
  for (const auto& line : wordsOf(*text)) {
    ++number;
    if (!validZ85Key(line[0])) {
      return badRequest(
          fmt::format("{}: key {} is not a CURVE public key (40 characters of Z85)", path, number));
    }
    keys.insert(line[0]);
  }
  return keys;
}

UnitLinkCredentials::UnitLinkCredentials(zmq::context_t& context, UnitLinkKeys keys)
    : context_(context.handle()) {
  std::lock_guard lock(registryMutex);
  registry()[context_] = std::move(keys);
}

UnitLinkCredentials::~UnitLinkCredentials() {
  std::lock_guard lock(registryMutex);
  registry().erase(context_);
}

std::unique_ptr<UnitLinkCredentials> unitLinksFromFiles(zmq::context_t& context,
                                                        const std::string& curveKey,
                                                        const std::string& unitPublicKey) {
  if (curveKey.empty() && unitPublicKey.empty()) return nullptr;
  auto keys = loadCurveKeypair(curveKey);
  if (!keys) throw std::runtime_error("--curve-key: " + keys.error().message);
  auto unit = loadCurvePublicKey(unitPublicKey);
  if (!unit) throw std::runtime_error("--unit-public-key: " + unit.error().message);
  spdlog::info("CURVE toward the units: this process's key {}", keys->publicKey);
  return std::make_unique<UnitLinkCredentials>(context, UnitLinkKeys{*keys, *unit});
}

std::optional<std::string> checkUnitLinkFlags(const std::string& curveKey,
                                              const std::string& unitPublicKey) {
  if (curveKey.empty() == unitPublicKey.empty()) return std::nullopt;
  return "--curve-key and --unit-public-key go together: this process's keypair and the "
         "units' public key";
}

void secureUnitSocket(zmq::context_t& context, zmq::socket_t& socket) {
  std::lock_guard lock(registryMutex);
  const auto it = registry().find(context.handle());
  if (it == registry().end()) return;
  socket.set(zmq::sockopt::curve_serverkey, it->second.unitPublicKey);
  socket.set(zmq::sockopt::curve_publickey, it->second.client.publicKey);
  socket.set(zmq::sockopt::curve_secretkey, it->second.client.secretKey);
}

void makeCurveServer(zmq::socket_t& socket, const CurveKeypair& unitKeys) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, unitKeys.secretKey);
  // The unit starts its CurveGate (the context's ZAP handler) before it
  // binds: libzmq asks the handler about every client from then on.
  socket.set(zmq::sockopt::zap_domain, CurveGate::kDomain);
}

CurveGate::CurveGate(zmq::context_t& context, std::string clientsFile)
    : file_(std::move(clientsFile)), stopper_(context, zmq::socket_type::pair) {
  auto keys = loadCurveClients(file_);
  if (!keys) throw std::runtime_error("--curve-clients: " + keys.error().message);
  allowed_ = std::move(*keys);
  socket_ = std::make_unique<zmq::socket_t>(context, zmq::socket_type::rep);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->bind("inproc://zeromq.zap.01");
  stopEndpoint_ = fmt::format("inproc://locus-curve-gate-{}", static_cast<void*>(this));
  stopper_.bind(stopEndpoint_);
  thread_ = std::thread([this, &context] {
    zmq::socket_t stop(context, zmq::socket_type::pair);
    stop.connect(stopEndpoint_);
    zmq::pollitem_t items[] = {{socket_->handle(), 0, ZMQ_POLLIN, 0},
                               {stop.handle(), 0, ZMQ_POLLIN, 0}};
    for (;;) {
      pollThroughSignals(items, 2, std::chrono::milliseconds(-1));
      if (items[1].revents & ZMQ_POLLIN) break;
      if (items[0].revents & ZMQ_POLLIN) serve();
    }
  });
  spdlog::info("CURVE on: {} client key(s) from {}", allowed_.size(), file_);
}

CurveGate::~CurveGate() {
  stopper_.send(zmq::str_buffer("stop"), zmq::send_flags::dontwait);
  thread_.join();
}

void CurveGate::reload() {
  auto keys = loadCurveClients(file_);
  std::lock_guard lock(mutex_);
  if (!keys) {
    spdlog::error("SIGHUP: kept the {} CURVE client key(s) in use: {}", allowed_.size(),
                  keys.error().message);
    return;
  }
  allowed_ = std::move(*keys);
  spdlog::info("SIGHUP: {} CURVE client key(s) from {}", allowed_.size(), file_);
}

size_t CurveGate::clients() const {
  std::lock_guard lock(mutex_);
  return allowed_.size();
}

void CurveGate::serve() {
  // RFC 27: version, request id, domain, address, identity, mechanism,
  // credentials (CURVE: the client's 32-byte public key).
  std::vector<zmq::message_t> request;
  if (!zmq::recv_multipart(*socket_, std::back_inserter(request), zmq::recv_flags::dontwait)) {
    return;
  }
  const auto text = [&](size_t i) { return i < request.size() ? request[i].to_string() : ""; };
  bool admit = false;
  std::string clientKey;
  if (request.size() >= 7 && text(0) == "1.0" && text(5) == "CURVE" && request[6].size() == 32) {
    char z85[41];
    zmq_z85_encode(z85, static_cast<const uint8_t*>(request[6].data()), 32);
    clientKey = z85;
    std::lock_guard lock(mutex_);
    admit = allowed_.count(clientKey) > 0;
  }
  if (!admit) {
    refused_.add(1);
    if (const auto n = refusals_.due()) {
      spdlog::warn("refused a unit client from {} ({}): {} refusal(s) since the last such line",
                   text(3), clientKey.empty() ? "not CURVE" : "key " + clientKey + " not listed",
                   *n);
    }
  }
  std::vector<zmq::const_buffer> reply{
      zmq::buffer(std::string_view("1.0")),
      zmq::buffer(request.size() > 1 ? request[1].data() : "",
                  request.size() > 1 ? request[1].size() : 0),
      zmq::buffer(std::string_view(admit ? "200" : "400")),
      zmq::buffer(std::string_view(admit ? "OK" : "client key not listed")),
      zmq::buffer(std::string_view(clientKey)),
      zmq::buffer(std::string_view(""))};
  zmq::send_multipart(*socket_, reply);
}

}  // namespace locus::transport
