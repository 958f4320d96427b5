#include "io/codec.hpp"

#include "io/codec_detail.hpp"

// To add a record type: declare its struct in codec.hpp (with
// current_version and a `v` member), add a fields() overload below, and two
// one-line functions that call encode_record() and decode_record()
// (io/codec_detail.hpp).

namespace brd::io {

using codec_detail::as_binary;
using codec_detail::decode_record;
using codec_detail::encode_record;
using codec_detail::record_of;

// -- field lists -----------------------------------------------------------

template <class Visitor, record_of<node_record> Record>
void fields(Visitor& f, Record& x) {
  f("name", x.name);
  f("cluster", x.cluster);
  f("tier", x.tier);
  f("roles", x.roles);
  f("host", x.host);
  f("port", x.port);
  f("http_port", x.http_port);
  f("version", x.version);
  f("incarnation", x.incarnation);
  f("started_at_ms", x.started_at_ms);
}

// The fields row_envelope and log_envelope share.
template <class Visitor, class Record>
void envelope_fields(Visitor& f, Record& x) {
  f("hlc", x.hlc);
  f("origin", x.origin);
  f("seq", x.seq);
  f("tomb", x.tomb);
  f("val", as_binary(x.val));
}

template <class Visitor, record_of<row_envelope> Record>
void fields(Visitor& f, Record& x) {
  envelope_fields(f, x);
}

template <class Visitor, record_of<log_envelope> Record>
void fields(Visitor& f, Record& x) {
  f("table", x.table);
  f("key", x.key);
  envelope_fields(f, x);
  f("ref", x.ref);
}

namespace {

// Decoded only for its "v" (decode_record reads that one itself).
struct version_only {
  static constexpr uint64_t current_version = 0;
  uint64_t v = 0;
};

template <class Visitor, record_of<version_only> Record>
void fields(Visitor&, Record&) {
}

} // namespace

// -- node_record -----------------------------------------------------------

std::string encode(const node_record& x) {
  return encode_record(x);
}

caf::expected<node_record> decode_node_record(std::string_view bytes) {
  return decode_record<node_record>(bytes, "node_record");
}

// -- state envelopes -------------------------------------------------------

std::string encode(const row_envelope& x) {
  return encode_record(x);
}

caf::expected<row_envelope> decode_row_envelope(std::string_view bytes) {
  return decode_record<row_envelope>(bytes, "row_envelope");
}

std::string encode(const log_envelope& x) {
  return encode_record(x);
}

caf::expected<log_envelope> decode_log_envelope(std::string_view bytes) {
  return decode_record<log_envelope>(bytes, "log_envelope");
}

caf::expected<uint64_t> decode_record_version(std::string_view bytes) {
  auto x = decode_record<version_only>(bytes, "record");
  if (!x)
    return std::move(x.error());
  return x->v;
}

} // namespace brd::io
