;;; selfanchor.el --- Self-Anchor reasoning from a local model  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "27.1") (jsonrpc "1.0.9"))
;; Keywords: tools, ai

;;; Commentary:

;; `M-x selfanchor-solve-region' sends the region (or the current line) to `selfanchor serve' and
;; streams the plans and steps into the *selfanchor* buffer; `M-x selfanchor-cancel' stops it.
;; Built on Emacs's own jsonrpc.el (LSP Content-Length framing).

;;; Code:

(require 'jsonrpc)
(require 'cl-lib)

(defgroup selfanchor nil "Self-Anchor reasoning with a local model." :group 'tools)

(defcustom selfanchor-program "selfanchor" "The selfanchor binary." :type 'string)
(defcustom selfanchor-model "default"
  "Model: \"default\" (Qwen2.5-Coder-1.5B), \"fast\" (0.5B), \"test\", a catalog name (\"qwen-1.5b\", \"qwen-0.5b\", \"smollm2-135m\"), or a GGUF path."
  :type (quote string))
(defcustom selfanchor-strategy "self-anchor" "Decoding strategy." :type 'string)
(defcustom selfanchor-options nil "Extra solve options, a plist such as (:maxTokens 256 :omega 1.5)." :type 'plist)

(defvar selfanchor--connection nil "The jsonrpc connection to the daemon.")
(defvar selfanchor--current nil "Id of the running solve.")
(defvar selfanchor--handlers (make-hash-table :test 'equal) "Event handlers by request id.")
(defvar selfanchor-last-finished nil "Id of the last solve that finished (for scripts and tests).")

(defun selfanchor--notification (_connection method params)
  "Route a `selfanchor/event' notification (METHOD, PARAMS) to its request's handler."
  (when (eq method 'selfanchor/event)
    (let ((handler (gethash (plist-get params :id) selfanchor--handlers)))
      (when handler (funcall handler (plist-get params :event))))))

(defun selfanchor--connection ()
  "The live connection, started (and initialized) on first use."
  (unless (and selfanchor--connection (jsonrpc-running-p selfanchor--connection))
    (let ((process (make-process :name "selfanchor" :connection-type 'pipe :coding 'utf-8-emacs-unix :noquery t
                                 :command (list selfanchor-program "serve" "--framing" "lsp" "--model" selfanchor-model)
                                 :stderr (get-buffer-create " *selfanchor stderr*"))))
      (setq selfanchor--connection
            (make-instance 'jsonrpc-process-connection :name "selfanchor" :process process
                           :notification-dispatcher #'selfanchor--notification))
      (jsonrpc-request selfanchor--connection :initialize
                       (list :processId (emacs-pid) :clientInfo (list :name "selfanchor.el")) :timeout 300)
      (jsonrpc-notify selfanchor--connection :initialized (make-hash-table))))
  selfanchor--connection)

(defun selfanchor--buffer ()
  (let ((buffer (get-buffer-create "*selfanchor*")))
    (with-current-buffer buffer (unless (derived-mode-p 'special-mode) (special-mode)))
    buffer))

(defun selfanchor--insert (text)
  (with-current-buffer (selfanchor--buffer)
    (let ((inhibit-read-only t))
      (goto-char (point-max))
      (insert text))))

;;;###autoload
(defun selfanchor-solve (question)
  "Solve QUESTION, streaming plans and steps into the *selfanchor* buffer.  Returns the request id."
  (interactive "sQuestion: ")
  (let* ((connection (selfanchor--connection))
         (section nil)
         (params (list :question question :strategy selfanchor-strategy :stream t
                       :options (or selfanchor-options (make-hash-table))))
         (id nil))
    (setq selfanchor-last-finished nil)
    (with-current-buffer (selfanchor--buffer)
      (let ((inhibit-read-only t)) (erase-buffer) (insert "Q: " question "\n")))
    (display-buffer (selfanchor--buffer))
    ;; `jsonrpc-async-request' returns nil in Emacs 27-29; the function under it returns (ID TIMER).
    (setq id (car (funcall (if (fboundp 'jsonrpc--async-request-1) #'jsonrpc--async-request-1 #'jsonrpc-async-request)
                   connection :solve params :timeout nil
                   :success-fn (lambda (_result)
                                 (remhash id selfanchor--handlers)
                                 (setq selfanchor--current nil selfanchor-last-finished id))
                   :error-fn (lambda (error)
                               (remhash id selfanchor--handlers)
                               (selfanchor--insert (if (eql (plist-get error :code) -32800) "\n(cancelled)\n"
                                                     (format "\nerror %s: %s\n" (plist-get error :code) (plist-get error :message))))
                               (setq selfanchor--current nil selfanchor-last-finished id)))))
    (unless id (error "selfanchor: this jsonrpc.el does not report request ids"))
    (puthash id (lambda (event)
                  (let ((kind (plist-get event :event)))
                    (cond
                     ((string-suffix-p "_delta" kind)
                      (let* ((name (substring kind 0 -6)) (index (plist-get event :index))
                             (key (format "%s:%s" name index)))
                        (unless (equal key section)
                          (selfanchor--insert
                           (concat (if section "\n" "")
                                   (pcase name ("plan" (format "Plan %d: " index)) ("reason" (format "Step %d: " index))
                                          ("answer" "Answer: ") (_ ""))))
                          (setq section key))
                        (selfanchor--insert (plist-get event :text))))
                     ((equal kind "answer")
                      (selfanchor--insert (format "\n=> %s\n" (or (plist-get event :extracted) "(no answer found)")))
                      (setq section nil))
                     ((equal kind "end")
                      (let ((timings (plist-get event :timings)))
                        (selfanchor--insert (format "(%d tokens, %.1f tokens/s)\n" (plist-get timings :predicted_n)
                                                    (plist-get timings :predicted_per_second))))))))
             selfanchor--handlers)
    (setq selfanchor--current id)
    id))

;;;###autoload
(defun selfanchor-solve-region (start end)
  "Solve the text between START and END (the current line without a region)."
  (interactive (if (use-region-p) (list (region-beginning) (region-end)) (list (line-beginning-position) (line-end-position))))
  (selfanchor-solve (string-trim (buffer-substring-no-properties start end))))

;;;###autoload
(defun selfanchor-cancel ()
  "Cancel the running solve."
  (interactive)
  (when (and selfanchor--current selfanchor--connection)
    (jsonrpc-notify selfanchor--connection :$/cancelRequest (list :id selfanchor--current))))

(defun selfanchor-shutdown ()
  "Stop the daemon."
  (interactive)
  (when (and selfanchor--connection (jsonrpc-running-p selfanchor--connection))
    (jsonrpc-shutdown selfanchor--connection))
  (setq selfanchor--connection nil))

(provide 'selfanchor)
;;; selfanchor.el ends here
