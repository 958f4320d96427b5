// A fresh directory under the system temp dir for one test, removed with all
// it holds when the test ends. Header-only: every unit test may include it.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <doctest/doctest.h>

namespace brd_test {

struct temp_dir {
  std::filesystem::path path;

  explicit temp_dir(std::string_view tag = "test") {
    auto pattern = (std::filesystem::temp_directory_path()
                    / ("brd-" + std::string{tag} + "-XXXXXX"))
                     .string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = std::filesystem::canonical(pattern);
  }

  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  // The path of `name` inside the directory, as a string.
  std::string sub(const std::string& name) const { return (path / name).string(); }
};

} // namespace brd_test
