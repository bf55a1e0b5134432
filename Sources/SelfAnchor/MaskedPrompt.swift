import Llama

/// Builds the masked copy of a conversation for SPA: every anchor string is replaced by a placeholder
/// in the message contents (longest anchors first, adjacent placeholders merged), and the chat
/// template is then applied to both copies the same way, so template markers and special tokens are
/// untouched.
public enum MaskedPrompt {
    /// The default placeholder: short, neutral, and tokenised into a few ordinary tokens.
    public static let defaultPlaceholder = "[MASK]"

    /// Why an anchor could not be used.
    public enum Problem: Error, Equatable, Sendable {
        case emptyAnchor
        case anchorNotFound(String)
    }

    /// The messages with anchors replaced. Every anchor must occur somewhere in the messages.
    public static func mask(_ messages: [ChatMessage], anchors: [String], placeholder: String) throws(Problem)
        -> [ChatMessage]
    {
        if anchors.contains(where: \.isEmpty) { throw .emptyAnchor }
        for anchor in anchors where !messages.contains(where: { $0.content.contains(anchor) }) {
            throw .anchorNotFound(anchor)
        }
        let ordered = anchors.sorted { $0.count > $1.count }
        return messages.map { message in
            var content = message.content
            for anchor in ordered { content = content.replacing(anchor, with: placeholder) }
            // Adjacent placeholders (anchors that touched) become one.
            let doubled = placeholder + placeholder
            let spaced = placeholder + " " + placeholder
            while content.contains(doubled) || content.contains(spaced) {
                content = content.replacing(doubled, with: placeholder).replacing(spaced, with: placeholder)
            }
            return ChatMessage(role: message.role, content: content)
        }
    }
}
