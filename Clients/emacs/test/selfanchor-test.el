;;; selfanchor-test.el --- batch tests against the real daemon  -*- lexical-binding: t; -*-
;; emacs --batch -Q -L Clients/emacs -l Clients/emacs/test/selfanchor-test.el -f ert-run-tests-batch-and-exit
(require 'ert)
(require 'selfanchor)

(setq selfanchor-program (or (getenv "SELFANCHOR_BIN") "selfanchor")
      selfanchor-model "test")

(defun selfanchor-test--wait (predicate seconds)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (funcall predicate)))

(defun selfanchor-test--output () (with-current-buffer (selfanchor--buffer) (buffer-string)))

(ert-deftest selfanchor-solve-region-streams-plans-and-steps ()
  (let ((selfanchor-strategy "self-anchor") (selfanchor-options (list :maxTokens 80 :maxSteps 2)))
    (with-temp-buffer
      (insert "A farmer has 12 cows and buys 7 more. How many cows does he have?")
      (let ((id (selfanchor-solve-region (point-min) (point-max))))
        (should (selfanchor-test--wait (lambda () (equal selfanchor-last-finished id)) 180))))
    (let ((output (selfanchor-test--output)))
      (should (string-match-p "^Q: A farmer has 12 cows" output))
      (should (string-match-p "^Plan 1: [^ ]" output))
      (should (string-match-p "^Step 1: [^ ]" output))
      (should (string-match-p "^=> " output))
      (should (string-match-p "tokens/s)" output)))))

(ert-deftest selfanchor-cancel-stops-a-running-solve ()
  (let ((selfanchor-strategy "cot") (selfanchor-options (list :maxTokens 3000 :temperature 4.0 :seed 9)))
    (let ((id (selfanchor-solve "Count to one thousand.")))
      (should (selfanchor-test--wait (lambda () (> (length (selfanchor-test--output)) 40)) 120))
      (selfanchor-cancel)
      (should (selfanchor-test--wait (lambda () (equal selfanchor-last-finished id)) 60))
      (should (string-match-p "(cancelled)" (selfanchor-test--output))))))

(ert-deftest selfanchor-shutdown-stops-the-daemon ()
  (selfanchor--connection)
  (let ((process (jsonrpc--process selfanchor--connection)))
    (selfanchor-shutdown)
    (should (selfanchor-test--wait (lambda () (not (process-live-p process))) 30))))
