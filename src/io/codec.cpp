#include "io/codec.hpp"

#include <concepts>
#include <exception>
#include <map>
#include <type_traits>

#include <msgpack.hpp>

#include "runtime/errors.hpp"

// A record type is described once by a fields() overload that names each of
// its fields to a visitor; the same list drives encoding and decoding. To add
// a record type: declare its struct in codec.hpp (with current_version and a
// `v` member), add a fields() overload below, and two one-line functions that
// call encode_record() and decode_record(). The "v" field is handled by those
// two templates, not by fields().

namespace brd::io {

namespace {

template <class Record, class Want>
concept record_of = std::same_as<std::remove_const_t<Record>, Want>;

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

// -- writing ---------------------------------------------------------------

using packer = msgpack::packer<msgpack::sbuffer>;

void pack_name(packer& out, std::string_view name) {
  out.pack_str(static_cast<uint32_t>(name.size()));
  out.pack_str_body(name.data(), static_cast<uint32_t>(name.size()));
}

// First pass: the map header needs the number of fields.
struct field_counter {
  uint32_t count = 0;
  template <class T>
  void operator()(std::string_view, const T&) {
    ++count;
  }
};

struct map_writer {
  packer& out;
  template <class T>
  void operator()(std::string_view name, const T& value) {
    pack_name(out, name);
    out.pack(value);
  }
};

template <class Record>
std::string encode_record(const Record& x) {
  field_counter counter;
  fields(counter, x);
  msgpack::sbuffer buf;
  packer out{buf};
  out.pack_map(counter.count + 1);
  pack_name(out, "v");
  out.pack(Record::current_version);
  map_writer writer{out};
  fields(writer, x);
  return std::string{buf.data(), buf.size()};
}

// -- reading ---------------------------------------------------------------

// The fields of one decoded map by name. Converts the ones asked for and
// remembers the first that has the wrong type; unknown names stay unread.
class map_reader {
public:
  explicit map_reader(const msgpack::object& map) {
    for (uint32_t i = 0; i < map.via.map.size; ++i) {
      const auto& kv = map.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR)
        by_name_.emplace(std::string_view{kv.key.via.str.ptr, kv.key.via.str.size},
                         &kv.val);
    }
  }

  bool has(std::string_view name) const {
    return by_name_.count(name) != 0;
  }

  template <class T>
  void operator()(std::string_view name, T& value) {
    auto i = by_name_.find(name);
    if (!bad_field_.empty() || i == by_name_.end())
      return;
    try {
      i->second->convert(value);
    } catch (const std::exception&) {
      bad_field_ = std::string{name};
    }
  }

  // Empty while every converted field had the right type.
  const std::string& bad_field() const {
    return bad_field_;
  }

private:
  std::map<std::string_view, const msgpack::object*> by_name_;
  std::string bad_field_;
};

caf::error corrupt(const char* type_name, const std::string& why) {
  return make_error(brd_errc::io_failure,
                    std::string{"corrupt record: "} + type_name + " " + why);
}

// Each array, map or string needs at least one byte of input, so limits of
// the input size refuse absurd lengths before msgpack allocates for them.
msgpack::unpack_limit limits_for(size_t size) {
  return msgpack::unpack_limit{size, size, size, size, size, 32};
}

template <class Record>
caf::expected<Record> decode_record(std::string_view bytes,
                                    const char* type_name) {
  try {
    size_t offset = 0;
    auto handle = msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr,
                                  nullptr, limits_for(bytes.size()));
    if (offset != bytes.size())
      return corrupt(type_name, "has trailing bytes after the map");
    const auto& root = handle.get();
    if (root.type != msgpack::type::MAP)
      return corrupt(type_name, "is not a msgpack map");
    map_reader reader{root};
    if (!reader.has("v"))
      return corrupt(type_name, "has no \"v\" schema version field");
    Record x;
    reader("v", x.v);
    fields(reader, x);
    if (!reader.bad_field().empty())
      return corrupt(type_name, "field '" + reader.bad_field()
                                  + "' has the wrong type or is out of range");
    return x;
  } catch (const msgpack::insufficient_bytes&) {
    return corrupt(type_name, "is truncated (" + std::to_string(bytes.size())
                                + " bytes)");
  } catch (const std::exception& e) {
    return corrupt(type_name, std::string{"cannot be parsed: "} + e.what());
  }
}

} // namespace

// -- node_record -----------------------------------------------------------

std::string encode(const node_record& x) {
  return encode_record(x);
}

caf::expected<node_record> decode_node_record(std::string_view bytes) {
  return decode_record<node_record>(bytes, "node_record");
}

} // namespace brd::io
