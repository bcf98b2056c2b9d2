package io.ptune.classify;

import io.ptune.InvalidConfigException;
import io.ptune.model.Model;
import io.ptune.model.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Turns texts into {@link ClassifierInput}s and label words into token ids, as OpenPrompt's
 * wrappers do for the verbalizer heads and as transformers' tokenizer does for the linear head.
 *
 * <ul>
 *   <li>Linear head: {@code tokenizer(text)} or {@code tokenizer(text, text_b)}: the tokenizer's
 *       special tokens and segment ids ({@code [CLS] a [SEP] b [SEP]} for BERT).
 *   <li>Verbalizer heads: each template piece is tokenised on its own without special tokens; on
 *       an encoder the {@code {mask}} slot becomes the mask token and the whole is wrapped in the
 *       tokenizer's special tokens ({@code [CLS] … [SEP]}), the slot being the mask's position; on
 *       a causal LM the template is cut at {@code {mask}} (only the tokenizer's leading special
 *       tokens, e.g. Llama's BOS, are added) and the slot is the last token.
 * </ul>
 *
 * Inputs longer than {@code maxLength} lose tokens at the end of their longest text (the
 * template's own words, the special tokens and the mask are kept).
 */
final class InputEncoder {
    private final Tokenizer tokenizer;
    private final boolean causal;
    private final boolean tokenTypes;
    private final PromptTemplate template;
    private final int maxLength;
    private final long maskId;

    InputEncoder(Model model, PromptTemplate template, int maxLength) {
        this.tokenizer = model.tokenizer();
        this.causal = model.architecture().causal();
        this.tokenTypes = model.architecture().usesTokenTypes();
        this.template = template;
        this.maxLength = maxLength;
        if (template != null && !causal) {
            this.maskId = tokenizer.maskTokenId().orElseThrow(() -> new InvalidConfigException("template",
                    tokenizer.source() + " defines no mask token ([MASK] / <mask>), which the {mask} slot of an"
                            + " encoder becomes"));
        } else {
            this.maskId = -1;
        }
    }

    /** One example; {@code textB} is null for single texts. */
    ClassifierInput encode(String text, String textB) {
        return template == null ? encodePlain(text, textB) : encodeTemplate(text, textB);
    }

    private ClassifierInput encodePlain(String text, String textB) {
        Tokenizer.SpecialTokens specials = textB == null ? tokenizer.singleSpecialTokens()
                : tokenizer.pairSpecialTokens();
        long[][] texts = textB == null ? new long[][] {tokenizer.encode(text, false)}
                : new long[][] {tokenizer.encode(text, false), tokenizer.encode(textB, false)};
        int fixed = specials.prefix().length + specials.suffix().length + (textB == null ? 0 : specials.middle().length);
        shorten(texts, fixed);
        List<long[]> parts = new ArrayList<>();
        List<Long> types = new ArrayList<>();
        add(parts, types, specials.prefix(), specials.typeA());
        add(parts, types, texts[0], specials.typeA());
        if (textB != null) {
            add(parts, types, specials.middle(), specials.typeA());
            add(parts, types, texts[1], specials.typeB());
        }
        add(parts, types, specials.suffix(), textB == null ? specials.typeA() : specials.typeB());
        long[] ids = concat(parts);
        if (ids.length == 0) {
            throw new IllegalArgumentException("the text '" + text + "' tokenises to no tokens");
        }
        return new ClassifierInput(ids, tokenTypes ? types.stream().mapToLong(Long::longValue).toArray() : null, -1);
    }

    private ClassifierInput encodeTemplate(String text, String textB) {
        if (template.hasTextB() && textB == null) {
            throw new IllegalArgumentException("the template '" + template + "' has a {text_b} slot but the example"
                    + " has no second text (give --text-b-field)");
        }
        if (!template.hasTextB() && textB != null) {
            throw new IllegalArgumentException("the example has a second text but the template '" + template
                    + "' has no {text_b} slot to put it in");
        }
        // Pieces up to the mask (all of them on an encoder); texts are the shortenable ones.
        List<long[]> pieces = new ArrayList<>();
        List<Integer> textPieces = new ArrayList<>();
        int maskPiece = -1;
        for (PromptTemplate.Piece piece : template.pieces()) {
            String space = piece.spaceBefore() ? " " : "";
            switch (piece.slot()) {
                case TEXT, TEXT_B -> {
                    textPieces.add(pieces.size());
                    pieces.add(tokenizer.encode(space + (piece.slot() == PromptTemplate.Slot.TEXT ? text : textB), false));
                }
                case LITERAL -> pieces.add(tokenizer.encode(space + piece.literal(), false));
                case MASK -> {
                    maskPiece = pieces.size();
                    pieces.add(causal ? new long[0] : new long[] {maskId});
                }
            }
            if (causal && maskPiece >= 0) {
                break;
            }
        }
        Tokenizer.SpecialTokens specials = tokenizer.singleSpecialTokens();
        long[] prefix = specials.prefix();
        long[] suffix = causal ? new long[0] : specials.suffix();
        int fixed = prefix.length + suffix.length;
        for (int p = 0; p < pieces.size(); p++) {
            if (!textPieces.contains(p)) {
                fixed += pieces.get(p).length;
            }
        }
        long[][] texts = new long[textPieces.size()][];
        for (int k = 0; k < texts.length; k++) {
            texts[k] = pieces.get(textPieces.get(k));
        }
        shorten(texts, fixed);
        for (int k = 0; k < texts.length; k++) {
            pieces.set(textPieces.get(k), texts[k]);
        }
        List<long[]> parts = new ArrayList<>();
        parts.add(prefix);
        int slot = prefix.length;
        for (int p = 0; p < pieces.size(); p++) {
            if (p == maskPiece) {
                slot += causal ? -1 : 0;
                break;
            }
            slot += pieces.get(p).length;
        }
        parts.addAll(pieces);
        parts.add(suffix);
        long[] ids = concat(parts);
        if (slot < 0) {
            throw new IllegalArgumentException("the template '" + template + "' with the text '" + text + "' has no"
                    + " token before {mask}, so a causal LM has nothing to predict the label word from");
        }
        return new ClassifierInput(ids, tokenTypes ? new long[ids.length] : null, slot);
    }

    /**
     * Label word token ids: {@code " " + word} without special tokens (a word starting with
     * {@code <!>} without the space), as OpenPrompt's ManualVerbalizer encodes them.
     *
     * @throws InvalidConfigException (field "verbalizer") for a word outside the vocabulary
     */
    long[] encodeWord(String label, String word) {
        String text = word.startsWith("<!>") ? word.substring(3) : " " + word;
        long[] ids = tokenizer.encode(text, false);
        if (ids.length == 0) {
            throw new InvalidConfigException("verbalizer", "label word '" + word + "' of class '" + label
                    + "' tokenises to no tokens");
        }
        if (tokenizer.unknownTokenId().isPresent()) {
            long unk = tokenizer.unknownTokenId().getAsLong();
            if (Arrays.stream(ids).anyMatch(id -> id == unk)) {
                throw new InvalidConfigException("verbalizer", "label word '" + word + "' of class '" + label
                        + "' is not in the vocabulary of " + tokenizer.source() + " (it tokenises to "
                        + Arrays.toString(tokenizer.tokens(text)) + "); choose another word");
            }
        }
        return ids;
    }

    /** Drops tokens from the end of the longest text until everything fits maxLength. */
    private void shorten(long[][] texts, int fixed) {
        int total = fixed;
        for (long[] t : texts) {
            total += t.length;
        }
        if (fixed >= maxLength && total > maxLength) {
            throw new InvalidConfigException("maxLength", "is " + maxLength + " but the template and special tokens"
                    + " alone take " + fixed + " tokens; raise --max-length");
        }
        while (total > maxLength) {
            int longest = 0;
            for (int k = 1; k < texts.length; k++) {
                if (texts[k].length > texts[longest].length) {
                    longest = k;
                }
            }
            texts[longest] = Arrays.copyOf(texts[longest], texts[longest].length - 1);
            total--;
        }
    }

    private static void add(List<long[]> parts, List<Long> types, long[] ids, long type) {
        parts.add(ids);
        for (int i = 0; i < ids.length; i++) {
            types.add(type);
        }
    }

    private static long[] concat(List<long[]> parts) {
        int n = 0;
        for (long[] p : parts) {
            n += p.length;
        }
        long[] out = new long[n];
        int at = 0;
        for (long[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
