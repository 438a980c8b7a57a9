// The one place that includes Boost.Asio for the project, so that every module sees the same
// configuration and the same short alias (kata::asio). Boost 1.74's awaitable.hpp uses
// std::exchange without including <utility>; including it first keeps every translation unit
// independent of include order.
#pragma once

#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace kata {

namespace asio = boost::asio;

/// The executor every awaitable in the project runs on.
using Executor = asio::any_io_executor;

template <class T = void>
using Task = asio::awaitable<T, Executor>;

}  // namespace kata
