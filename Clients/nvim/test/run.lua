-- Headless test: nvim --headless -u NONE --cmd 'set rtp+=Clients/nvim' -c 'luafile Clients/nvim/test/run.lua'
local selfanchor = require('selfanchor')
vim.cmd('runtime plugin/selfanchor.lua')
local failures = {}
local function check(ok, what) if not ok then table.insert(failures, what) end end

selfanchor.setup({ binary = os.getenv('SELFANCHOR_BIN'), model = 'test', options = { maxTokens = 80, maxSteps = 2 } })
vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'A farmer has 12 cows and buys 7 more. How many cows does he have?' })
vim.cmd('1SelfAnchorSolve')
check(vim.wait(180000, function() return selfanchor.last_done ~= nil end, 50), 'solve finished')
local out = selfanchor.output()
check(out:find('Q: A farmer has 12 cows', 1, true), 'question shown')
check(out:find('\nPlan 1: %S'), 'plan streamed: ' .. out)
check(out:find('\nStep 1: %S'), 'step streamed')
check(out:find('\n=> ', 1, true), 'answer shown')
check(out:find('tokens/s)', 1, true), 'timings shown')

-- Cancel: a long sampled generation, cancelled after the first streamed text.
selfanchor.setup({ options = { maxTokens = 3000, temperature = 4.0, seed = 1 } })
selfanchor.config.strategy = 'cot'
selfanchor.last_done = nil
selfanchor.solve('Count to one thousand.')
check(vim.wait(120000, function() return #selfanchor.output() > #('Q: Count to one thousand.\n') + 5 end, 20), 'text streamed')
vim.cmd('SelfAnchorCancel')
check(vim.wait(60000, function() return selfanchor.last_done ~= nil end, 50), 'cancel answered')
check(selfanchor.output():find('(cancelled)', 1, true), 'cancel shown: ' .. selfanchor.output())

if #failures > 0 then
  io.stderr:write('FAILED: ' .. table.concat(failures, '; ') .. '\n')
  vim.cmd('cquit 1')
else
  io.stdout:write('nvim client: all checks passed\n')
  vim.cmd('qall!')
end
