-- selfanchor for Neovim (0.7+): :SelfAnchorSolve streams plans and steps into a scratch buffer.
local M = {}

M.config = { binary = 'selfanchor', model = 'default', strategy = 'self-anchor', options = {} }

local json_encode = (vim.json and vim.json.encode) or vim.fn.json_encode
local json_decode = (vim.json and vim.json.decode) or vim.fn.json_decode

local state = { job = nil, buffer = '', next_id = 1, pending = {}, current = nil }

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', M.config, opts or {})
end

local function send(message)
  local body = json_encode(message)
  vim.fn.chansend(state.job, 'Content-Length: ' .. #body .. '\r\n\r\n' .. body)
end

local function dispatch(message)
  if message.method == 'selfanchor/event' then
    local handler = state.pending[message.params.id]
    if handler and handler.on_event then handler.on_event(message.params.event) end
  elseif message.id ~= nil and message.method == nil then
    local handler = state.pending[message.id]
    state.pending[message.id] = nil
    if handler then handler.on_done(message.result, message.error) end
  end
end

local function on_stdout(_, data)
  -- jobstart splits output on newlines; joining with '\n' restores the byte stream.
  state.buffer = state.buffer .. table.concat(data, '\n')
  while true do
    local header_end = state.buffer:find('\r\n\r\n', 1, true)
    if not header_end then return end
    local length = tonumber(state.buffer:sub(1, header_end):lower():match('content%-length:%s*(%d+)'))
    local body_start = header_end + 4
    if #state.buffer < body_start + length - 1 then return end
    local body = state.buffer:sub(body_start, body_start + length - 1)
    state.buffer = state.buffer:sub(body_start + length)
    dispatch(json_decode(body))
  end
end

local function request(method, params, on_event, on_done)
  local id = state.next_id
  state.next_id = id + 1
  state.pending[id] = { on_event = on_event, on_done = on_done or function() end }
  send({ jsonrpc = '2.0', id = id, method = method, params = params })
  return id
end

local function ensure_daemon()
  if state.job then return end
  local command = { M.config.binary, 'serve', '--framing', 'lsp', '--model', M.config.model }
  state.job = vim.fn.jobstart(command, {
    on_stdout = on_stdout,
    on_exit = function()
      for _, handler in pairs(state.pending) do handler.on_done(nil, { code = -1, message = 'the daemon exited' }) end
      state.job, state.buffer, state.pending = nil, '', {}
    end,
  })
  if state.job <= 0 then
    state.job = nil
    error('selfanchor: cannot start ' .. M.config.binary)
  end
  request('initialize', { processId = vim.fn.getpid(), clientInfo = { name = 'selfanchor.nvim' } })
  send({ jsonrpc = '2.0', method = 'initialized', params = vim.empty_dict() })
end

-- The scratch buffer, created on first use and reused.
local function output_buffer()
  if state.output and vim.api.nvim_buf_is_valid(state.output) then return state.output end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, 'selfanchor://solve')
  vim.api.nvim_buf_set_option(buf, 'filetype', 'markdown')
  state.output = buf
  return buf
end

local function append(buf, text, new_line)
  local lines = vim.split(text, '\n', { plain = true })
  local count = vim.api.nvim_buf_line_count(buf)
  if new_line then
    vim.api.nvim_buf_set_lines(buf, count, count, false, lines)
  else
    local last = vim.api.nvim_buf_get_lines(buf, count - 1, count, false)[1] or ''
    lines[1] = last .. lines[1]
    vim.api.nvim_buf_set_lines(buf, count - 1, count, false, lines)
  end
end

--- Solves `question`, streaming into the scratch buffer. Returns the request id.
function M.solve(question)
  ensure_daemon()
  local buf = output_buffer()
  if #vim.fn.win_findbuf(buf) == 0 then
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, buf)
    vim.cmd('wincmd p')
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'Q: ' .. question:gsub('\n', ' '), '' })
  local section = nil
  local labels = { plan = 'Plan %d: ', reason = 'Step %d: ', answer = 'Answer: ', text = '' }
  local id
  id = request('solve', { question = question, strategy = M.config.strategy, options = M.config.options, stream = true },
    function(event)
      local kind = event.event
      if kind:sub(-6) == '_delta' then
        local name = kind:sub(1, -7)
        local key = name .. ':' .. event.index
        if key ~= section then
          append(buf, string.format(labels[name], event.index), section ~= nil)
          section = key
        end
        append(buf, event.text, false)
      elseif kind == 'answer' then
        append(buf, '=> ' .. (event.extracted ~= vim.NIL and event.extracted or '(no answer found)'), true)
        section = nil
      elseif kind == 'end' then
        append(buf, string.format('(%d tokens, %.1f tokens/s)', event.timings.predicted_n, event.timings.predicted_per_second), true)
      end
    end,
    function(_, err)
      if state.current == id then state.current = nil end
      if err then append(buf, err.code == -32800 and '(cancelled)' or ('error ' .. err.code .. ': ' .. err.message), true) end
      M.last_done = id
    end)
  state.current = id
  return id
end

--- Cancels the running solve, if any.
function M.cancel()
  if state.job and state.current then
    send({ jsonrpc = '2.0', method = '$/cancelRequest', params = { id = state.current } })
  end
end

--- The text of the scratch buffer (for tests and scripts).
function M.output()
  return table.concat(vim.api.nvim_buf_get_lines(output_buffer(), 0, -1, false), '\n')
end

return M
