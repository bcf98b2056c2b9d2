package io.ptune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.ptune.InvalidConfigException;
import io.ptune.TestPaths;
import io.ptune.model.Tokenizer;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ChatTemplateTest {
    private static Tokenizer tokenizer;

    @BeforeAll
    static void load() {
        tokenizer = Tokenizer.load(TestPaths.stories260k());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void promptText() {
        assertEquals("Human: Add\n1 and 2\n\nAssistant: ", ChatTemplate.prompt(new AlpacaExample("Add", "1 and 2", "3")));
        assertEquals("Human: Say hi\n\nAssistant: ", ChatTemplate.prompt(new AlpacaExample("Say hi", "", "hi")));
    }

    @Test
    void labelsCoverOnlyTheAnswerAndEos() {
        AlpacaExample example = new AlpacaExample("Tell a story", "", "Once upon a time");
        TokenizedExample encoded = new ChatTemplate(tokenizer, 2, 256).encode(example);

        long[] prompt = tokenizer.encode("Human: Tell a story\n\nAssistant: ", true);
        long[] answer = tokenizer.encode("Once upon a time", false);
        assertEquals(1, prompt[0], "the prompt starts with BOS, as the tokenizer config says");
        long[] expectedIds = new long[prompt.length + answer.length + 1];
        System.arraycopy(prompt, 0, expectedIds, 0, prompt.length);
        System.arraycopy(answer, 0, expectedIds, prompt.length, answer.length);
        expectedIds[expectedIds.length - 1] = 2;
        assertArrayEquals(expectedIds, encoded.ids());

        long[] expectedLabels = expectedIds.clone();
        Arrays.fill(expectedLabels, 0, prompt.length, -100);
        assertArrayEquals(expectedLabels, encoded.labels());
        assertEquals(answer.length + 1, encoded.labelTokens());
    }

    @Test
    void truncationKeepsTheStart() {
        AlpacaExample example = new AlpacaExample("Tell a story", "", "Once upon a time there was a dog");
        TokenizedExample full = new ChatTemplate(tokenizer, 2, 256).encode(example);
        int promptLength = tokenizer.encode(ChatTemplate.prompt(example), true).length;
        int maxLength = promptLength + 2;
        TokenizedExample cut = new ChatTemplate(tokenizer, 2, maxLength).encode(example);
        assertEquals(maxLength, cut.length());
        assertArrayEquals(Arrays.copyOf(full.ids(), maxLength), cut.ids());
        assertArrayEquals(Arrays.copyOf(full.labels(), maxLength), cut.labels());
        assertEquals(2, cut.labelTokens());

        TokenizedExample promptOnly = new ChatTemplate(tokenizer, 2, promptLength - 1).encode(example);
        assertEquals(0, promptOnly.labelTokens());
    }

    @Test
    void rejectsNonPositiveMaxLength() {
        InvalidConfigException e = assertThrows(InvalidConfigException.class, () -> new ChatTemplate(tokenizer, 2, 0));
        assertEquals("maxLength", e.field());
    }
}
