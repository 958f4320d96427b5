#include "io/hmac.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace brd::io {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  // OpenSSL 3 refuses a null key pointer even with length 0.
  static const unsigned char empty = 0;
  const void* key_ptr = key.empty() ? &empty : static_cast<const void*>(key.data());
  const auto* data_ptr = data.empty() ? &empty
                                      : reinterpret_cast<const unsigned char*>(data.data());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()), data_ptr, data.size(),
           mac, &mac_len) == nullptr)
    return {}; // only on allocation failure; never equal to a real signature
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(mac_len * 2);
  for (unsigned int i = 0; i < mac_len; ++i) {
    hex.push_back(digits[mac[i] >> 4]);
    hex.push_back(digits[mac[i] & 0x0f]);
  }
  return hex;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  if (a.empty())
    return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace brd::io
