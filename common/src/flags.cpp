#include "locus/common/flags.h"

#include <cctype>

namespace locus {

std::string envNameForFlag(const std::string& flag) {
  std::string name = "LOCUS_";
  for (char c : flag.substr(flag.find_first_not_of('-'))) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

}  // namespace locus
