// Child processes for tests that run the real binaries: start one with its
// stderr captured, wait for a log line or for its exit (always with a
// timeout), and never leave it running. Header-only, Linux.
//
// Thread-affinity: a ChildProcess is used from the thread that started it
// (PR_SET_PDEATHSIG ties the child's life to that thread); a private reader
// thread collects stderr.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ;

namespace locus::testkit {

// How a child process ended.
struct ExitStatus {
  bool exited = false;  // true: ended by exit() with `code`; false: killed by `signal`
  int code = -1;
  int signal = 0;

  static ExitStatus fromWaitStatus(int status) {
    ExitStatus s;
    if (WIFEXITED(status)) {
      s.exited = true;
      s.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      s.signal = WTERMSIG(status);
    }
    return s;
  }
  std::string describe() const {
    return exited ? "exit code " + std::to_string(code)
                  : "killed by signal " + std::to_string(signal);
  }
};

class ChildProcess {
 public:
  // Starts `path` with `args` as argv[1..]. The child gets the parent's
  // environment minus every LOCUS_* variable (so the caller's shell cannot
  // change a test), plus `env` entries ("NAME=value"). stdin and stdout are
  // /dev/null; stderr is captured. Throws std::system_error if it cannot
  // start; an exec failure shows as exit code 127.
  ChildProcess(const std::string& path, const std::vector<std::string>& args,
               const std::vector<std::string>& env = {}) {
    std::vector<std::string> argStrings{path};
    argStrings.insert(argStrings.end(), args.begin(), args.end());
    std::vector<std::string> envStrings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "LOCUS_", 6) != 0) envStrings.emplace_back(*e);
    }
    envStrings.insert(envStrings.end(), env.begin(), env.end());
    // Everything the child touches is prepared before fork: after fork it
    // may only call async-signal-safe functions.
    std::vector<char*> argv, envp;
    for (auto& a : argStrings) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envStrings) envp.push_back(e.data());
    envp.push_back(nullptr);

    int pipeFds[2];
    if (pipe2(pipeFds, O_CLOEXEC) != 0) throw errnoError("pipe2");
    const int devNull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devNull < 0) {
      close(pipeFds[0]);
      close(pipeFds[1]);
      throw errnoError("open /dev/null");
    }
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Child: die with the test process; default signal handling and mask.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) sigaction(sig, &dfl, nullptr);
      dup2(devNull, STDIN_FILENO);
      dup2(devNull, STDOUT_FILENO);
      dup2(pipeFds[1], STDERR_FILENO);
      execve(argv[0], argv.data(), envp.data());
      static const char kMsg[] = "ChildProcess: execve failed\n";
      [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
      _exit(127);
    }
    const int forkErrno = errno;
    close(devNull);
    close(pipeFds[1]);
    if (pid_ < 0) {
      close(pipeFds[0]);
      throw std::system_error(forkErrno, std::generic_category(), "fork");
    }
    stderrFd_ = pipeFds[0];
    reader_ = std::thread([this] { readStderr(); });
  }

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Kills (SIGKILL) and reaps the child if it still runs.
  ~ChildProcess() {
    if (!status_) {
      kill(pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    stop_ = true;
    reader_.join();
    close(stderrFd_);
  }

  pid_t pid() const { return pid_; }

  void signal(int sig) {
    if (!status_) kill(pid_, sig);
  }

  // Waits until stderr so far contains a match of `pattern` and returns its
  // first capture group (or the whole match without groups); nothing when
  // the timeout passes or stderr closes (the child exited) first.
  std::optional<std::string> waitForStderr(const std::regex& pattern,
                                           std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    std::smatch match;
    const bool found = changed_.wait_for(
        lock, timeout, [&] { return std::regex_search(stderr_, match, pattern) || stderrClosed_; });
    if (!found || match.empty()) return std::nullopt;
    return match.size() > 1 ? match[1].str() : match[0].str();
  }

  // Waits until stderr closes (the child exited) or the timeout passes.
  void waitForStderrClosed(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return stderrClosed_; });
  }

  // Everything the child wrote to stderr so far.
  std::string stderrText() const {
    std::lock_guard lock(mutex_);
    return stderr_;
  }

  // Waits for the child to exit and reaps it; nothing on timeout.
  std::optional<ExitStatus> waitExit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        status_ = ExitStatus::fromWaitStatus(status);
        break;
      }
      if (r < 0 && errno != EINTR) throw errnoError("waitpid");
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status_;
  }

 private:
  static std::system_error errnoError(const char* what) {
    return std::system_error(errno, std::generic_category(), what);
  }

  void readStderr() {
    char buffer[4096];
    while (!stop_) {
      pollfd item{stderrFd_, POLLIN, 0};
      if (poll(&item, 1, 20) <= 0) continue;  // timeout or EINTR: check stop_
      const ssize_t n = read(stderrFd_, buffer, sizeof buffer);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      std::lock_guard lock(mutex_);
      if (n > 0) {
        stderr_.append(buffer, static_cast<size_t>(n));
      } else {
        stderrClosed_ = true;
      }
      changed_.notify_all();
      if (n <= 0) return;
    }
  }

  pid_t pid_ = -1;
  int stderrFd_ = -1;
  std::optional<ExitStatus> status_;  // set once reaped
  std::atomic<bool> stop_{false};
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string stderr_;         // guarded by mutex_
  bool stderrClosed_ = false;  // guarded by mutex_
};

}  // namespace locus::testkit
