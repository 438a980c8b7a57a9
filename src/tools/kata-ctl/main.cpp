// kata-ctl: inspect the configuration the runtime would use.
//   kata-ctl env [--json] [--config FILE] [--annotation k=v ...] [--no-path-check]
//   kata-ctl check-config FILE [--no-path-check]
//   kata-ctl --show-default-config-paths
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "kata/config/loader.hpp"
#include "kata/config/render.hpp"
#include "kata/core/error.hpp"

namespace {

using namespace kata::config;

std::map<std::string, std::string> parse_annotations(const std::vector<std::string>& pairs) {
  std::map<std::string, std::string> annotations;
  for (const auto& pair : pairs) {
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      kata::fail(kata::Errc::invalid_argument, "--annotation {}: expected key=value", pair);
    }
    annotations[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return annotations;
}

LoadOptions options_for(bool no_path_check) {
  LoadOptions options;
  options.path_check = no_path_check ? PathCheck::lexical : PathCheck::resolve;
  return options;
}

void print_env(const LoadedConfig& loaded, bool json) {
  if (json) {
    nlohmann::ordered_json out;
    out["file"] = loaded.file.string();
    out["drop_ins"] = nlohmann::ordered_json::array();
    for (const auto& drop_in : loaded.drop_ins) out["drop_ins"].push_back(drop_in.string());
    out["warnings"] = loaded.warnings;
    out["config"] = to_json(loaded.config);
    std::cout << out.dump(2) << '\n';
    return;
  }
  std::cout << "# configuration file: " << loaded.file.string() << '\n';
  for (const auto& drop_in : loaded.drop_ins) std::cout << "# drop-in: " << drop_in.string() << '\n';
  for (const auto& warning : loaded.warnings) std::cout << "# warning: " << warning << '\n';
  std::cout << '\n' << to_toml(loaded.config);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kata-ctl: show and check the Kata Containers runtime configuration"};
  bool show_paths = false;
  app.add_flag("--show-default-config-paths", show_paths, "Print the configuration search list, in order");

  auto* env = app.add_subcommand("env", "Print the effective configuration (after config.d/ and annotations)");
  bool json = false;
  bool env_no_path_check = false;
  std::string config_file;
  std::vector<std::string> annotation_pairs;
  env->add_flag("--json", json, "JSON instead of TOML");
  env->add_option("--config", config_file, "Configuration file (as the runtime option config_path)");
  env->add_option("--annotation", annotation_pairs, "OCI annotation key=value (repeatable)");
  env->add_flag("--no-path-check", env_no_path_check, "Do not require kernel/image/binary paths to exist");

  auto* check = app.add_subcommand("check-config", "Load and validate one configuration file");
  std::string check_file;
  bool check_no_path_check = false;
  check->add_option("FILE", check_file, "Configuration file")->required();
  check->add_flag("--no-path-check", check_no_path_check, "Do not require kernel/image/binary paths to exist");

  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  try {
    if (show_paths) {
      std::cout << "KATA_CONF_FILE (must name one of the files below)\n"
                << "runtime option config_path\n";
      for (const auto& path : default_config_paths()) std::cout << path.string() << '\n';
      return 0;
    }
    if (*env) {
      auto source = ConfigSource::from_environment(config_file);
      auto loaded = load_sandbox_config(source, parse_annotations(annotation_pairs), options_for(env_no_path_check));
      print_env(loaded, json);
      return 0;
    }
    if (*check) {
      const auto options = options_for(check_no_path_check);
      auto loaded = load_config_file(check_file, options);
      kata::with_context(check_file, [&] { validate_config(loaded.config, options); });
      for (const auto& warning : loaded.warnings) std::cerr << "warning: " << warning << '\n';
      std::cout << check_file << ": OK\n";
      return 0;
    }
    std::cout << app.help();
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "kata-ctl: " << kata::describe(error) << '\n';
    return 1;
  }
}
