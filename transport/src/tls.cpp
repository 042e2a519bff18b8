#include "locus/transport/tls.h"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "locus/common/auth.h"

namespace locus::transport {
namespace {

std::string readPem(const std::string& path, bool secret) {
  if (secret) {
    auto text = auth::readKeyFile(path);  // refuses a key others can read
    if (!text) throw std::runtime_error(text.error().message);
    return std::move(*text);
  }
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

template <typename Make>
auto parse(const std::string& path, Make make) {
  try {
    return make();
  } catch (const kj::Exception& e) {
    throw std::runtime_error(path + " is not PEM that OpenSSL takes: " + e.getDescription().cStr());
  }
}

}  // namespace

TlsServer::TlsServer(const std::string& certFile, const std::string& keyFile) {
  const std::string certPem = readPem(certFile, false);
  const std::string keyPem = readPem(keyFile, true);
  auto cert = parse(certFile, [&] { return kj::TlsCertificate(kj::StringPtr(certPem.c_str())); });
  auto key = parse(keyFile, [&] { return kj::TlsPrivateKey(kj::StringPtr(keyPem.c_str())); });
  keypair_ = kj::heap<kj::TlsKeypair>(kj::TlsKeypair{kj::mv(key), kj::mv(cert)});
  kj::TlsContext::Options options;
  options.defaultKeypair = *keypair_;
  try {
    context_ = kj::heap<kj::TlsContext>(kj::mv(options));
  } catch (const kj::Exception& e) {
    throw std::runtime_error("TLS: the key " + keyFile + " does not go with " + certFile + ": " +
                             e.getDescription().cStr());
  }
}

std::optional<std::string> checkTlsFlags(const std::string& certFile, const std::string& keyFile) {
  if (certFile.empty() == keyFile.empty()) return std::nullopt;
  return "--tls-cert and --tls-key go together: the certificate chain and its private key "
         "(PEM)";
}

kj::Own<kj::TlsContext> tlsClientContext(const TlsClientOptions& options) {
  const std::string pem = readPem(options.caFile, false);
  // Kept alive for the context's construction, which copies them into its
  // trust store.
  std::vector<kj::TlsCertificate> trusted;
  trusted.push_back(
      parse(options.caFile, [&] { return kj::TlsCertificate(kj::StringPtr(pem.c_str())); }));
  kj::TlsContext::Options tls;
  tls.useSystemTrustStore = false;
  tls.trustedCertificates = kj::ArrayPtr<const kj::TlsCertificate>(trusted.data(), trusted.size());
  return kj::heap<kj::TlsContext>(kj::mv(tls));
}

}  // namespace locus::transport
