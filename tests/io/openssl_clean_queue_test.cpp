// io/openssl_clean_queue.cpp: an SSL I/O call starts with an empty error
// queue, so SSL_get_error reports what this call did, not what an earlier
// failure on another connection left behind (the CAF 0.17 bug it works
// around).
#include <dlfcn.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <doctest/doctest.h>

namespace {

// A client and a server session joined by memory BIOs, handshake done, with
// a throwaway self-signed certificate. Nothing is in flight afterwards, so
// a read's honest answer is SSL_ERROR_WANT_READ.
struct session_pair {
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  SSL* server = nullptr;
  SSL* client = nullptr;
  BIO* to_server = BIO_new(BIO_s_mem());
  BIO* to_client = BIO_new(BIO_s_mem());

  session_pair() {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("probe-test"), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(server_ctx, cert);
    SSL_CTX_use_PrivateKey(server_ctx, key);
    server = SSL_new(server_ctx);
    client = SSL_new(client_ctx);
    BIO_up_ref(to_server);
    BIO_up_ref(to_client);
    SSL_set_bio(server, to_server, to_client); // reads to_server, writes to_client
    SSL_set_bio(client, to_client, to_server);
    SSL_set_accept_state(server);
    SSL_set_connect_state(client);
    for (int round = 0; round < 10 && !(SSL_is_init_finished(client)
                                         && SSL_is_init_finished(server));
         ++round) {
      SSL_do_handshake(client);
      SSL_do_handshake(server);
    }
    char byte = 0;
    SSL_read(client, &byte, 1); // takes the server's session tickets
    ERR_clear_error();
  }

  ~session_pair() {
    SSL_free(client);
    SSL_free(server);
    X509_free(cert);
    EVP_PKEY_free(key);
    SSL_CTX_free(client_ctx);
    SSL_CTX_free(server_ctx);
  }

  bool established() const {
    return SSL_is_init_finished(client) && SSL_is_init_finished(server);
  }
};

// What another connection's failure leaves on this thread's queue.
void leave_a_stale_error() {
  ERR_raise(ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING);
}

using read_fn = int (*)(SSL*, void*, int);

// SSL_get_error's verdict on `read` of an idle, established session, with a
// stale error on the queue.
int verdict_on_idle_read(read_fn read) {
  session_pair s;
  REQUIRE(s.established());
  leave_a_stale_error();
  char byte = 0;
  int verdict = SSL_get_error(s.client, read(s.client, &byte, 1));
  ERR_clear_error();
  return verdict;
}

} // namespace

TEST_CASE("OpenSSL's own SSL_read blames a stale error on a connection that has no data yet") {
  auto openssl_read = reinterpret_cast<read_fn>(::dlvsym(RTLD_NEXT, "SSL_read", "OPENSSL_3.0.0"));
  bool found = openssl_read != nullptr;
  REQUIRE(found);
  CHECK(verdict_on_idle_read(openssl_read) == SSL_ERROR_SSL);
}

TEST_CASE("with the queue cleared first, SSL_read says it waits for data, and reads what comes") {
  CHECK(verdict_on_idle_read(&SSL_read) == SSL_ERROR_WANT_READ);
  session_pair s;
  REQUIRE(s.established());
  leave_a_stale_error();
  char sent = 'x';
  REQUIRE(SSL_write(s.server, &sent, 1) == 1);
  leave_a_stale_error();
  char byte = 0;
  CHECK(SSL_read(s.client, &byte, 1) == 1);
  CHECK(byte == 'x');
}

TEST_CASE("a handshake call starts with an empty queue too") {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  leave_a_stale_error();
  CHECK(SSL_get_error(ssl, SSL_connect(ssl)) == SSL_ERROR_WANT_READ);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}
