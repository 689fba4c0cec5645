// The camlang extension: the TextMate grammar and language configuration are declared in
// package.json; this file starts `camlang lsp` (diagnostics, hover, completion, go to
// definition, references, formatting, outline) over stdio for every .cam file.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("camlang").get("server.command", ["camlang", "lsp"]);
  const server = { command: command[0], args: command.slice(1) };
  client = new LanguageClient(
    "camlang",
    "camlang language server",
    { run: server, debug: server },
    { documentSelector: [{ language: "cam" }] }
  );
  context.subscriptions.push(client);
  return client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `camlang: could not start \`${command.join(" ")}\` (${err.message}). ` +
        'Install it with pip install "camlang[lsp]", or set camlang.server.command.'
    );
  });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
