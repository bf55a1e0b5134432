'use strict';
// VS Code: "Self-Anchor: Solve Selection" streams plans and steps into an output channel; "Self-Anchor: Cancel" stops it.
const vscode = require('vscode');
const { DaemonConnection, EventFormatter } = require('./protocol');

let connection = null;
let running = null;

async function daemon() {
  if (!connection) {
    const config = vscode.workspace.getConfiguration('selfanchor');
    connection = new DaemonConnection({ binary: config.get('binary'), model: config.get('model') });
    connection.exited.then(() => { connection = null; });
    await connection.initialize();
  }
  return connection;
}

function activate(context) {
  const channel = vscode.window.createOutputChannel('Self-Anchor');
  context.subscriptions.push(channel);

  context.subscriptions.push(vscode.commands.registerCommand('selfanchor.solveSelection', async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    const question = editor.document.getText(editor.selection.isEmpty
      ? editor.document.lineAt(editor.selection.active.line).range : editor.selection).trim();
    if (!question) { vscode.window.showWarningMessage('Self-Anchor: select a question first.'); return; }
    const strategy = vscode.workspace.getConfiguration('selfanchor').get('strategy');
    channel.show(true);
    channel.appendLine(`Q: ${question}`);
    const formatter = new EventFormatter((text) => channel.append(text));
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Self-Anchor', cancellable: true },
      async (_progress, token) => {
        const conn = await daemon();
        running = conn.solve(question, { strategy }, (event) => formatter.handle(event));
        token.onCancellationRequested(() => conn.cancel(running.id));
        try {
          await running.promise;
        } catch (error) {
          channel.appendLine(error.cancelled ? '\n(cancelled)' : `\nerror ${error.code}: ${error.message}`);
        } finally {
          running = null;
        }
      });
  }));

  context.subscriptions.push(vscode.commands.registerCommand('selfanchor.cancel', () => {
    if (running && connection) connection.cancel(running.id);
  }));
}

async function deactivate() {
  if (connection) await connection.close();
}

module.exports = { activate, deactivate };
