#include "output.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>

namespace brsh {

std::optional<format> parse_format(const std::string& text) {
  if (text == "table")
    return format::table;
  if (text == "json")
    return format::json;
  return std::nullopt;
}

void print_table(std::ostream& out, const table& t) {
  std::vector<size_t> width(t.columns.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  widen(t.columns);
  for (const auto& row : t.rows)
    widen(row);
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  };
  std::vector<std::string> header;
  for (const auto& c : t.columns) {
    std::string upper = c;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    header.push_back(upper);
  }
  print_row(header);
  for (const auto& row : t.rows)
    print_row(row);
}

void print_facts(std::ostream& out, const facts& f) {
  size_t width = 0;
  for (const auto& [name, value] : f)
    width = std::max(width, name.size());
  for (const auto& [name, value] : f)
    out << name << ':' << std::string(width - name.size() + 2, ' ') << value << '\n';
}

void print_json(std::ostream& out, const nlohmann::json& j) {
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", value, units[unit]);
  return buf;
}

std::string human_seconds(uint64_t seconds) {
  auto h = seconds / 3600, m = (seconds / 60) % 60, s = seconds % 60;
  std::string out;
  if (h > 0)
    out += std::to_string(h) + "h ";
  if (h > 0 || m > 0)
    out += std::to_string(m) + "m ";
  return out + std::to_string(s) + "s";
}

std::string human_age_ms(int64_t ms) {
  if (ms < 0)
    return "never";
  if (ms < 1000)
    return std::to_string(ms) + " ms";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string percent(double pct) {
  return std::to_string(static_cast<int>(std::lround(pct))) + "%";
}

std::optional<uint64_t> parse_count(const std::string& text) {
  char* end = nullptr;
  auto n = std::strtoull(text.c_str(), &end, 10);
  bool digits = !text.empty() && std::isdigit(static_cast<unsigned char>(text[0]));
  if (!digits || *end != '\0' || n == 0)
    return std::nullopt;
  return n;
}

std::string utc_text(int64_t ms) {
  if (ms <= 0)
    return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%03uZ", static_cast<unsigned>(ms % 1000));
  return std::string{buf} + frac;
}

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0 || digits > 12)
    return std::nullopt;
  auto n = std::stoll(text.substr(0, digits));
  auto unit = text.substr(digits);
  if (unit == "ms")
    return std::chrono::milliseconds{n};
  if (unit.empty() || unit == "s")
    return std::chrono::milliseconds{n * 1000};
  if (unit == "m")
    return std::chrono::milliseconds{n * 60'000};
  if (unit == "h")
    return std::chrono::milliseconds{n * 3'600'000};
  return std::nullopt;
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0)
    return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0)
    return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string clip(const std::string& text, size_t width) {
  if (text.size() <= width || width < 4)
    return text;
  return text.substr(0, width - 3) + "...";
}

} // namespace brsh
