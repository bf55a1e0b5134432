-- :SelfAnchorSolve (current line or a visual range) and :SelfAnchorCancel.
vim.api.nvim_create_user_command('SelfAnchorSolve', function(opts)
  local lines = vim.api.nvim_buf_get_lines(0, opts.line1 - 1, opts.line2, false)
  require('selfanchor').solve(table.concat(lines, '\n'))
end, { range = true, desc = 'Solve the current line or selection with selfanchor' })

vim.api.nvim_create_user_command('SelfAnchorCancel', function()
  require('selfanchor').cancel()
end, { desc = 'Cancel the running selfanchor solve' })
