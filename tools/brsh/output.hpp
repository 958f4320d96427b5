// How brsh prints: aligned tables for people, JSON for programs (-o json),
// and the small formatting helpers both use. Nothing here knows about
// actors or the network.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace brsh {

enum class format { table, json };

// "table" or "json"; nullopt for anything else.
std::optional<format> parse_format(const std::string& text);

// Rows under a header, printed with aligned columns (two spaces apart).
struct table {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
};

void print_table(std::ostream& out, const table& t);

// "name:  value" lines with the values aligned.
using facts = std::vector<std::pair<std::string, std::string>>;
void print_facts(std::ostream& out, const facts& f);

// Pretty JSON (two-space indent) and a newline.
void print_json(std::ostream& out, const nlohmann::json& j);

// 1536 -> "1.5 KiB".
std::string human_bytes(uint64_t bytes);
// 3725 -> "1h 2m 5s".
std::string human_seconds(uint64_t seconds);
// 120 -> "120 ms", 4200 -> "4.2 s", -1 -> "never".
std::string human_age_ms(int64_t ms);
// 45.4 -> "45%".
std::string percent(double pct);

// A positive count as typed ("20"); nullopt for anything else.
std::optional<uint64_t> parse_count(const std::string& text);

// Milliseconds since the Unix epoch as UTC "2025-06-01T12:00:00.123Z";
// "-" for 0 (not yet).
std::string utc_text(int64_t ms);

// A duration as a script writes it: "500ms", "5s", "2m", "1h"; a bare
// number is seconds. nullopt when it does not parse.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
// The inverse: 5000 ms -> "5s", 1500 ms -> "1500ms", 120000 ms -> "2m".
std::string format_duration(std::chrono::milliseconds d);

// `text` cut to `width` characters, ending in "..." when cut.
std::string clip(const std::string& text, size_t width);

} // namespace brsh
