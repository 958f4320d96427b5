// OpenSSL's contract: "The current thread's error queue must be empty before
// the TLS/SSL I/O operation is attempted, or SSL_get_error() will not work
// reliably" (SSL_get_error(3)). CAF 0.17's OpenSSL transport breaks it: when
// one TLS connection fails (a peer that closes without close_notify, as
// every brsh does when it exits, or an intruder whose handshake is refused),
// the error stays on the multiplexer thread's queue, and the next SSL_read
// of another connection that merely has no data yet (SSL_ERROR_WANT_READ)
// is taken for a fatal error: the node drops a healthy fleet link. Measured
// (cluster_brsh, "brsh's connections over TLS leave the fleet's own links
// up"): every brsh exit made the node it used lose its links for ~50 ms.
//
// These definitions interpose on the four I/O calls CAF's OpenSSL module
// makes (the executable's symbols come first in the dynamic linker's
// lookup), clear the calling thread's queue, then call OpenSSL's own. They
// are linked into the programs (brnode, brsh), not into a library: a static
// library would not pull this object in. The fix belongs in CAF: drop this
// file once the CAF in use clears the queue itself (with it unlinked,
// cluster_tls's intruder case and cluster_brsh's TLS links case show it).
#include <cstdio>
#include <cstdlib>

#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class Fn>
Fn real(const char* name) {
  // OpenSSL 3 versions its symbols; the unversioned lookup is the fallback.
  void* sym = ::dlvsym(RTLD_NEXT, name, "OPENSSL_3.0.0");
  if (sym == nullptr)
    sym = ::dlsym(RTLD_NEXT, name);
  if (sym == nullptr) {
    std::fprintf(stderr, "fatal: OpenSSL's %s is not loaded (%s)\n", name, ::dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

using io_fn = int (*)(SSL*, void*, int);
using write_fn = int (*)(SSL*, const void*, int);
using handshake_fn = int (*)(SSL*);

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto next = real<io_fn>("SSL_read");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto next = real<write_fn>("SSL_write");
  ERR_clear_error();
  return next(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static const auto next = real<handshake_fn>("SSL_accept");
  ERR_clear_error();
  return next(ssl);
}

int SSL_connect(SSL* ssl) {
  static const auto next = real<handshake_fn>("SSL_connect");
  ERR_clear_error();
  return next(ssl);
}

} // extern "C"
