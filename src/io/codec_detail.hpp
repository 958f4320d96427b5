// The msgpack-c machinery behind io/codec.hpp's records, shared by every
// module that stores versioned records (io/codec.cpp for the node record and
// the state envelopes, io/deploy_records.cpp for push-to-deploy's records).
//
// A record type is described once by a fields() overload that names each of
// its fields to a visitor; the same list drives encoding and decoding. The
// overload must be declared in the record's own namespace (brd::io) so that
// the templates here find it. encode_record() and decode_record() handle the
// "v" field themselves; fields() does not list it.
#pragma once

#include <concepts>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <msgpack.hpp>

#include "runtime/errors.hpp"

namespace brd::io::codec_detail {

template <class Record, class Want>
concept record_of = std::same_as<std::remove_const_t<Record>, Want>;

// A string field packed as msgpack bin (arbitrary bytes) instead of str.
// Reading accepts bin or str.
template <class String>
struct binary {
  String& bytes;
};

template <class String>
binary<String> as_binary(String& bytes) {
  return binary<String>{bytes};
}

// -- writing ---------------------------------------------------------------

// Packs straight into the record's std::string: msgpack's sbuffer would
// allocate 8 KiB per record and then be copied.
struct string_sink {
  std::string& out;
  void write(const char* data, size_t size) {
    out.append(data, size);
  }
};

using packer = msgpack::packer<string_sink>;

inline void pack_name(packer& out, std::string_view name) {
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
  template <class String>
  void operator()(std::string_view name, const binary<String>& field) {
    pack_name(out, name);
    out.pack_bin(static_cast<uint32_t>(field.bytes.size()));
    out.pack_bin_body(field.bytes.data(),
                      static_cast<uint32_t>(field.bytes.size()));
  }
};

template <class Record>
std::string encode_record(const Record& x) {
  field_counter counter;
  fields(counter, x);
  std::string bytes;
  bytes.reserve(64);
  string_sink sink{bytes};
  packer out{sink};
  out.pack_map(counter.count + 1);
  pack_name(out, "v");
  out.pack(Record::current_version);
  map_writer writer{out};
  fields(writer, x);
  return bytes;
}

// -- reading ---------------------------------------------------------------

// The fields of one decoded map by name. Converts the ones asked for and
// remembers the first that has the wrong type; unknown names stay unread.
class map_reader {
public:
  explicit map_reader(const msgpack::object& map) {
    by_name_.reserve(map.via.map.size);
    for (uint32_t i = 0; i < map.via.map.size; ++i) {
      const auto& kv = map.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR)
        by_name_.emplace_back(std::string_view{kv.key.via.str.ptr, kv.key.via.str.size},
                              &kv.val);
    }
  }

  bool has(std::string_view name) const {
    return find(name) != nullptr;
  }

  template <class T>
  void operator()(std::string_view name, T& value) {
    auto field = find(name);
    if (!bad_field_.empty() || field == nullptr)
      return;
    try {
      field->convert(value);
    } catch (const std::exception&) {
      bad_field_ = std::string{name};
    }
  }

  void operator()(std::string_view name, binary<std::string> field) {
    auto found = find(name);
    if (!bad_field_.empty() || found == nullptr)
      return;
    const auto& value = *found;
    if (value.type == msgpack::type::BIN)
      field.bytes.assign(value.via.bin.ptr, value.via.bin.size);
    else if (value.type == msgpack::type::STR)
      field.bytes.assign(value.via.str.ptr, value.via.str.size);
    else
      bad_field_ = std::string{name};
  }

  // Empty while every converted field had the right type.
  const std::string& bad_field() const {
    return bad_field_;
  }

private:
  // The first field of that name, as a map lookup would (records have a
  // dozen fields, so a scan beats building a tree per record).
  const msgpack::object* find(std::string_view name) const {
    for (const auto& [key, value] : by_name_)
      if (key == name)
        return value;
    return nullptr;
  }

  std::vector<std::pair<std::string_view, const msgpack::object*>> by_name_;
  std::string bad_field_;
};

inline caf::error corrupt(const char* type_name, const std::string& why) {
  return make_error(brd_errc::io_failure,
                    std::string{"corrupt record: "} + type_name + " " + why);
}

// Each array, map or string needs at least one byte of input, so limits of
// the input size refuse absurd lengths before msgpack allocates for them.
inline msgpack::unpack_limit limits_for(size_t size) {
  return msgpack::unpack_limit{size, size, size, size, size, 32};
}

// Strings and binaries point into the input instead of being copied into
// the zone: decode_record converts every field before it returns.
inline bool reference_input(msgpack::type::object_type, size_t, void*) {
  return true;
}

// The zone decode_record unpacks into, one per thread and reused: a fresh
// zone would allocate (and free) an 8 KiB chunk for every record.
class scratch_zone {
public:
  scratch_zone() : zone_(zone()) {
  }
  ~scratch_zone() {
    zone_.clear();
  }
  scratch_zone(const scratch_zone&) = delete;
  scratch_zone& operator=(const scratch_zone&) = delete;
  msgpack::zone& get() {
    return zone_;
  }

private:
  static msgpack::zone& zone() {
    thread_local msgpack::zone z{2048};
    return z;
  }
  msgpack::zone& zone_;
};

template <class Record>
caf::expected<Record> decode_record(std::string_view bytes,
                                    const char* type_name) {
  try {
    scratch_zone zone;
    size_t offset = 0;
    auto root = msgpack::unpack(zone.get(), bytes.data(), bytes.size(), offset,
                                reference_input, nullptr, limits_for(bytes.size()));
    if (offset != bytes.size())
      return corrupt(type_name, "has trailing bytes after the map");
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

} // namespace brd::io::codec_detail
