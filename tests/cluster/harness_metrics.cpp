// Prometheus text exposition format, parsed for tests of /metrics.
#include "harness.hpp"

#include <cstdlib>
#include <sstream>

namespace brd::test {

// -- Prometheus text ----------------------------------------------------------

namespace {

// Parses `{a="x",b="y"}` starting at line[pos] == '{'; returns the index
// after '}', or npos when malformed.
size_t parse_labels(const std::string& line, size_t pos,
                    std::map<std::string, std::string>& labels) {
  ++pos;
  while (pos < line.size() && line[pos] != '}') {
    auto eq = line.find('=', pos);
    if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"')
      return std::string::npos;
    auto key = line.substr(pos, eq - pos);
    std::string value;
    size_t i = eq + 2;
    for (; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size())
        ++i;
      value += line[i];
    }
    labels[key] = value;
    pos = i + 1;
    if (pos < line.size() && line[pos] == ',')
      ++pos;
  }
  return pos < line.size() ? pos + 1 : std::string::npos;
}

} // namespace

std::vector<metric_sample> parse_metrics(const std::string& text) {
  std::vector<metric_sample> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#')
      continue;
    metric_sample s;
    auto end = line.find_first_of("{ ");
    if (end == std::string::npos)
      continue;
    s.name = line.substr(0, end);
    if (line[end] == '{' && (end = parse_labels(line, end, s.labels)) == std::string::npos)
      continue;
    s.value = std::strtod(line.c_str() + end, nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<metric_sample> find_metrics(const std::vector<metric_sample>& all,
                                        const std::string& name,
                                        const std::map<std::string, std::string>& labels) {
  std::vector<metric_sample> out;
  for (const auto& s : all) {
    bool match = s.name == name;
    for (const auto& [k, v] : labels)
      match = match && s.labels.count(k) > 0 && s.labels.at(k) == v;
    if (match)
      out.push_back(s);
  }
  return out;
}

} // namespace brd::test
