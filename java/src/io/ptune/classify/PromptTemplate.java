package io.ptune.classify;

import io.ptune.InvalidConfigException;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A PET pattern: text with a {@code {text}} slot, an optional {@code {text_b}} slot (pairs) and
 * one {@code {mask}} slot, e.g. {@code "{text} It was {mask}."}.
 *
 * <p>It is cut into pieces the way OpenPrompt's {@code Template.parse_text} does, and each piece
 * is tokenised on its own: literal text keeps its leading space (as a prefix) and loses its
 * trailing spaces; a slot preceded by a space gets a space prefix too. So {@code "{text} It was
 * {mask}."} is the pieces text, {@code " It was"}, mask, {@code "."}.
 *
 * @param text the template as written
 * @param pieces its pieces, in order
 */
public record PromptTemplate(String text, List<Piece> pieces) {
    /** The template of the verbalizer heads when none is given. */
    public static final String DEFAULT = "{text} It was {mask}.";

    /** The kinds of piece. */
    public enum Slot {
        TEXT,
        TEXT_B,
        MASK,
        LITERAL
    }

    /**
     * One piece.
     *
     * @param slot what it is
     * @param literal the text of a LITERAL piece (trailing spaces removed), else null
     * @param spaceBefore whether a space is put before it (it followed a space in the template)
     */
    public record Piece(Slot slot, String literal, boolean spaceBefore) {
        public Piece {
            Objects.requireNonNull(slot, "slot");
            if ((slot == Slot.LITERAL) != (literal != null)) {
                throw new IllegalArgumentException("only LITERAL pieces have text");
            }
        }
    }

    public PromptTemplate {
        Objects.requireNonNull(text, "text");
        pieces = List.copyOf(pieces);
    }

    /**
     * Parses a template.
     *
     * @throws InvalidConfigException (field "template") when a slot is unknown or unclosed, or the
     *     template lacks its {@code {mask}} or {@code {text}} slot or repeats one
     */
    public static PromptTemplate parse(String template) {
        if (template == null || template.isBlank()) {
            throw new InvalidConfigException("template", "is empty; write it like \"" + DEFAULT + "\"");
        }
        List<Piece> pieces = new ArrayList<>();
        int i = 0;
        int n = template.length();
        while (i < n) {
            boolean space = i > 0 && template.charAt(i - 1) == ' ';
            while (i < n && template.charAt(i) == ' ') {
                space = true;
                i++;
            }
            if (i == n) {
                break;
            }
            if (template.charAt(i) == '{') {
                int close = template.indexOf('}', i);
                if (close < 0) {
                    throw new InvalidConfigException("template", "'" + template + "' opens a slot at character " + i
                            + " that is never closed with '}'");
                }
                String name = template.substring(i + 1, close).trim();
                Slot slot = switch (name) {
                    case "text", "text_a" -> Slot.TEXT;
                    case "text_b" -> Slot.TEXT_B;
                    case "mask" -> Slot.MASK;
                    default -> throw new InvalidConfigException("template", "'{" + name + "}' is not a slot; the"
                            + " slots are {text}, {text_b} and {mask}");
                };
                pieces.add(new Piece(slot, null, space));
                i = close + 1;
            } else {
                int next = template.indexOf('{', i);
                int end = next < 0 ? n : next;
                String literal = template.substring(i, end).stripTrailing();
                if (literal.indexOf('}') >= 0) {
                    throw new InvalidConfigException("template", "'" + template + "' has a '}' without its '{'");
                }
                pieces.add(new Piece(Slot.LITERAL, literal, space));
                i = end;
            }
        }
        PromptTemplate parsed = new PromptTemplate(template, pieces);
        if (parsed.count(Slot.MASK) == 0) {
            throw new InvalidConfigException("template", "'" + template + "' has no {mask} slot; the verbalizer"
                    + " reads the label words there, e.g. \"" + DEFAULT + "\"");
        }
        if (parsed.count(Slot.MASK) > 1) {
            throw new InvalidConfigException("template", "'" + template + "' has several {mask} slots; give one");
        }
        if (parsed.count(Slot.TEXT) != 1) {
            throw new InvalidConfigException("template", "'" + template + "' must have exactly one {text} slot,"
                    + " where the example's text goes");
        }
        if (parsed.count(Slot.TEXT_B) > 1) {
            throw new InvalidConfigException("template", "'" + template + "' has several {text_b} slots; give one");
        }
        return parsed;
    }

    /** Whether the template has a {@code {text_b}} slot (a pair task). */
    public boolean hasTextB() {
        return count(Slot.TEXT_B) > 0;
    }

    private long count(Slot slot) {
        return pieces.stream().filter(p -> p.slot() == slot).count();
    }

    @Override
    public String toString() {
        return text;
    }
}
