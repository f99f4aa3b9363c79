// The repository's own promises to its users (issue 12, item 17): a LICENSE file that the README
// names, and the README's statement that the ALMC algorithm is reconstructed from the paper (which
// publishes no code) with constants and defaults of our own.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace {

// The repository root: two levels above the test data (ALMC_TEST_DATA), else the working directory.
std::string root() {
  if (const char* e = std::getenv("ALMC_TEST_DATA"); e && *e) return std::string(e) + "/../../";
  return "./";
}

std::string read(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

TEST(ProjectFiles, LicenseExistsAndTheReadmeNamesIt) {
  const std::string license = read(root() + "LICENSE");
  ASSERT_FALSE(license.empty()) << "no LICENSE file in " << root();
  EXPECT_EQ(license.rfind("MIT License", 0), 0u) << "LICENSE does not start with its name";
  EXPECT_NE(license.find("Permission is hereby granted"), std::string::npos);
  const std::string readme = read(root() + "README.md");
  ASSERT_FALSE(readme.empty()) << "no README.md in " << root();
  // A License section that names the license and links the file.
  const size_t section = readme.find("\n## License");
  ASSERT_NE(section, std::string::npos) << "the README has no '## License' section";
  const std::string tail = readme.substr(section);
  EXPECT_NE(tail.find("MIT"), std::string::npos);
  EXPECT_NE(tail.find("(LICENSE)"), std::string::npos) << "the License section does not link LICENSE";
}

TEST(ProjectFiles, ReadmeSaysTheAlgorithmIsReconstructedFromThePaper) {
  std::string readme = read(root() + "README.md");
  ASSERT_FALSE(readme.empty());
  for (char& c : readme)
    if (c == '\n') c = ' ';  // the sentence may wrap
  for (const char* phrase : {"publishes no code", "reconstructed from it", "constants and defaults", "of our own",
                             "docs/ALGORITHMS.md"})
    EXPECT_NE(readme.find(phrase), std::string::npos) << "the README lacks \"" << phrase << "\"";
  // That statement comes before the first section (where a new user reads).
  EXPECT_LT(readme.find("reconstructed from it"), readme.find("\n## "));
}

}  // namespace
