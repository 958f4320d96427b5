#include "script.hpp"

#include <cctype>
#include <cstring>
#include <fstream>
#include <iostream>

#include "runtime/errors.hpp"

namespace brsh {

caf::expected<std::vector<std::string>> split_words(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char ch = line[i];
    if (ch == '#' && !in_word)
      break;
    if (std::isspace(static_cast<unsigned char>(ch))) {
      if (in_word)
        words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (ch == '\\' && i + 1 < line.size()) {
      word += line[++i];
    } else if (ch == '\'' || ch == '"') {
      auto close = i + 1;
      for (; close < line.size() && line[close] != ch; ++close) {
        if (ch == '"' && line[close] == '\\' && close + 1 < line.size()
            && (line[close + 1] == '"' || line[close + 1] == '\\'))
          ++close;
        word += line[close];
      }
      if (close >= line.size())
        return brd::make_error(brd::brd_errc::refused,
                               std::string{"a quote ("} + ch + ") is not closed");
      i = close;
    } else {
      word += ch;
    }
  }
  if (in_word)
    words.push_back(std::move(word));
  return words;
}

namespace {

// Lines with their numbers, continuation lines joined.
std::vector<std::pair<size_t, std::string>> logical_lines(std::istream& in) {
  std::vector<std::pair<size_t, std::string>> out;
  std::string line, pending;
  size_t number = 0, first = 0;
  while (std::getline(in, line)) {
    ++number;
    if (pending.empty())
      first = number;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    out.emplace_back(first, pending + line);
    pending.clear();
  }
  if (!pending.empty())
    out.emplace_back(first, pending);
  return out;
}

} // namespace

int run_script(context& ctx, const std::string& path, script_options opts) {
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::cerr << "brsh: cannot read script " << path << ": " << std::strerror(errno) << '\n';
      return exit_usage;
    }
  }
  std::istream& in = path == "-" ? std::cin : file;
  int first_failure = exit_ok;
  for (auto& [number, text] : logical_lines(in)) {
    auto where = (path == "-" ? "stdin" : path) + ":" + std::to_string(number) + ": ";
    auto words = split_words(text);
    if (!words) {
      std::cerr << where << brd::describe(words.error()) << '\n';
      return exit_usage;
    }
    if (words->empty())
      continue;
    bool tolerate = (*words)[0] == "try";
    if (tolerate)
      words->erase(words->begin());
    if (opts.echo)
      std::cerr << "+ " << text << '\n';
    ctx.out.flush();
    auto result = run_command(ctx, *words);
    ctx.out.flush();
    if (ctx.quit)
      return result.code;
    if (result.ok())
      continue;
    if (!result.message.empty())
      std::cerr << where << (tolerate ? "(tolerated) " : "") << result.message << '\n';
    if (tolerate)
      continue;
    if (!opts.keep_going)
      return result.code;
    if (first_failure == exit_ok)
      first_failure = result.code;
  }
  return first_failure;
}

} // namespace brsh
