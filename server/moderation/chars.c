/*
 * chars.c — what one code point is to the engine: its class (letter, digit, l33t symbol,
 * mask, apostrophe, space, separator, ignored), its folding to lowercase ASCII (case,
 * accents, ligatures, homoglyphs, fullwidth and mathematical letters), its case, and
 * whether it ends a sentence or may sit inside an obfuscated word; plus the lenient UTF-8
 * decoder and the l33t readings of digits and symbols.
 *
 * Owns: the code point table below (data: ranges, not code). Never: looks at more than one
 * code point, or knows about tokens, lists or scores.
 */
#include "engine_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CR_BRK 0x01       /* ends a sentence: ! ? newline (a '.' is decided by tokenize.c) */
#define CR_TIGHT 0x02     /* a separator that may sit inside an obfuscated word */
#define CR_UPPER 0x04     /* an uppercase letter */
#define CR_LOWER 0x08     /* a lowercase letter (a letter with neither has no case) */
#define CR_CASE_EVEN 0x10 /* uppercase at even code points, lowercase at odd ones */
#define CR_CASE_ODD 0x20  /* uppercase at odd code points, lowercase at even ones */
#define CR_SEQ 0x40       /* out[0] is the character of `first`; each next code point the next
                           * character ("a".."z", "0".."9") */

/* Code points first..last fold the same way: class, flags, and out (the folded
 * characters: one or two letters, a digit or l33t symbol as written, "\x01" for a letter
 * of another script that is part of a word but never matches, "" for the rest). */
struct cprange {
    uint32_t first, last;
    uint8_t cls;
    uint8_t flags;
    char out[3];
};

/* Sorted, contiguous, covering every uint32_t: found by binary search. The names are the
 * Unicode names of each range's first code point. Separators are punctuation, symbols,
 * emoji, private use and specials; any other code point is a letter of another script. */
static const struct cprange ranges[] = {
    {0x0000, 0x0008, CL_SEP, 0, ""}, /* control */
    {0x0009, 0x0009, CL_SPACE, 0, ""}, /* control */
    {0x000A, 0x000A, CL_SPACE, CR_BRK, ""}, /* control */
    {0x000B, 0x000D, CL_SPACE, 0, ""}, /* control */
    {0x000E, 0x001F, CL_SEP, 0, ""}, /* control */
    {0x0020, 0x0020, CL_SPACE, 0, ""}, /* space */
    {0x0021, 0x0021, CL_LEET, CR_BRK, "!"}, /* exclamation mark */
    {0x0022, 0x0022, CL_SEP, CR_TIGHT, ""}, /* quotation mark */
    {0x0023, 0x0023, CL_MASK, 0, "*"}, /* number sign */
    {0x0024, 0x0024, CL_LEET, 0, "$"}, /* dollar sign */
    {0x0025, 0x0026, CL_SEP, 0, ""}, /* percent sign */
    {0x0027, 0x0027, CL_APOS, CR_TIGHT, ""}, /* apostrophe */
    {0x0028, 0x0029, CL_SEP, 0, ""}, /* left parenthesis */
    {0x002A, 0x002A, CL_MASK, 0, "*"}, /* asterisk */
    {0x002B, 0x002B, CL_LEET, 0, "+"}, /* plus sign */
    {0x002C, 0x002F, CL_SEP, CR_TIGHT, ""}, /* comma */
    {0x0030, 0x0039, CL_DIGIT, CR_SEQ, "0"}, /* digit zero */
    {0x003A, 0x003B, CL_SEP, CR_TIGHT, ""}, /* colon */
    {0x003C, 0x003C, CL_SEP, 0, ""}, /* less-than sign */
    {0x003D, 0x003D, CL_SEP, CR_TIGHT, ""}, /* equals sign */
    {0x003E, 0x003E, CL_SEP, 0, ""}, /* greater-than sign */
    {0x003F, 0x003F, CL_SEP, CR_BRK, ""}, /* question mark */
    {0x0040, 0x0040, CL_LEET, 0, "@"}, /* commercial at */
    {0x0041, 0x005A, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* latin capital letter a */
    {0x005B, 0x005B, CL_SEP, 0, ""}, /* left square bracket */
    {0x005C, 0x005C, CL_SEP, CR_TIGHT, ""}, /* reverse solidus */
    {0x005D, 0x005D, CL_SEP, 0, ""}, /* right square bracket */
    {0x005E, 0x005F, CL_SEP, CR_TIGHT, ""}, /* circumflex accent */
    {0x0060, 0x0060, CL_APOS, CR_TIGHT, ""}, /* grave accent */
    {0x0061, 0x007A, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* latin small letter a */
    {0x007B, 0x007B, CL_SEP, 0, ""}, /* left curly bracket */
    {0x007C, 0x007C, CL_LEET, 0, "|"}, /* vertical line */
    {0x007D, 0x007D, CL_SEP, 0, ""}, /* right curly bracket */
    {0x007E, 0x007E, CL_SEP, CR_TIGHT, ""}, /* tilde */
    {0x007F, 0x0084, CL_SEP, 0, ""}, /* control */
    {0x0085, 0x0085, CL_SPACE, 0, ""}, /* control */
    {0x0086, 0x009F, CL_SEP, 0, ""}, /* control */
    {0x00A0, 0x00A0, CL_SPACE, 0, ""}, /* no-break space */
    {0x00A1, 0x00A1, CL_LEET, 0, "!"}, /* inverted exclamation mark */
    {0x00A2, 0x00AC, CL_SEP, 0, ""}, /* cent sign */
    {0x00AD, 0x00AD, CL_IGNORE, 0, ""}, /* soft hyphen */
    {0x00AE, 0x00B6, CL_SEP, 0, ""}, /* registered sign */
    {0x00B7, 0x00B7, CL_SEP, CR_TIGHT, ""}, /* middle dot */
    {0x00B8, 0x00BF, CL_SEP, 0, ""}, /* cedilla */
    {0x00C0, 0x00C5, CL_LETTER, CR_UPPER, "a"}, /* latin capital letter a with grave */
    {0x00C6, 0x00C6, CL_LETTER, CR_UPPER, "ae"}, /* latin capital letter ae */
    {0x00C7, 0x00C7, CL_LETTER, CR_UPPER, "c"}, /* latin capital letter c with cedilla */
    {0x00C8, 0x00CB, CL_LETTER, CR_UPPER, "e"}, /* latin capital letter e with grave */
    {0x00CC, 0x00CF, CL_LETTER, CR_UPPER, "i"}, /* latin capital letter i with grave */
    {0x00D0, 0x00D0, CL_LETTER, CR_UPPER, "d"}, /* latin capital letter eth */
    {0x00D1, 0x00D1, CL_LETTER, CR_UPPER, "n"}, /* latin capital letter n with tilde */
    {0x00D2, 0x00D6, CL_LETTER, CR_UPPER, "o"}, /* latin capital letter o with grave */
    {0x00D7, 0x00D7, CL_SEP, 0, ""}, /* multiplication sign */
    {0x00D8, 0x00D8, CL_LETTER, CR_UPPER, "o"}, /* latin capital letter o with stroke */
    {0x00D9, 0x00DC, CL_LETTER, CR_UPPER, "u"}, /* latin capital letter u with grave */
    {0x00DD, 0x00DD, CL_LETTER, CR_UPPER, "y"}, /* latin capital letter y with acute */
    {0x00DE, 0x00DE, CL_LETTER, CR_UPPER, "th"}, /* latin capital letter thorn */
    {0x00DF, 0x00DF, CL_LETTER, CR_LOWER, "ss"}, /* latin small letter sharp s */
    {0x00E0, 0x00E5, CL_LETTER, CR_LOWER, "a"}, /* latin small letter a with grave */
    {0x00E6, 0x00E6, CL_LETTER, CR_LOWER, "ae"}, /* latin small letter ae */
    {0x00E7, 0x00E7, CL_LETTER, CR_LOWER, "c"}, /* latin small letter c with cedilla */
    {0x00E8, 0x00EB, CL_LETTER, CR_LOWER, "e"}, /* latin small letter e with grave */
    {0x00EC, 0x00EF, CL_LETTER, CR_LOWER, "i"}, /* latin small letter i with grave */
    {0x00F0, 0x00F0, CL_LETTER, CR_LOWER, "d"}, /* latin small letter eth */
    {0x00F1, 0x00F1, CL_LETTER, CR_LOWER, "n"}, /* latin small letter n with tilde */
    {0x00F2, 0x00F6, CL_LETTER, CR_LOWER, "o"}, /* latin small letter o with grave */
    {0x00F7, 0x00F7, CL_SEP, 0, ""}, /* division sign */
    {0x00F8, 0x00F8, CL_LETTER, CR_LOWER, "o"}, /* latin small letter o with stroke */
    {0x00F9, 0x00FC, CL_LETTER, CR_LOWER, "u"}, /* latin small letter u with grave */
    {0x00FD, 0x00FD, CL_LETTER, CR_LOWER, "y"}, /* latin small letter y with acute */
    {0x00FE, 0x00FE, CL_LETTER, CR_LOWER, "th"}, /* latin small letter thorn */
    {0x00FF, 0x00FF, CL_LETTER, CR_LOWER, "y"}, /* latin small letter y with diaeresis */
    {0x0100, 0x0105, CL_LETTER, CR_CASE_EVEN, "a"}, /* latin capital letter a with macron */
    {0x0106, 0x010D, CL_LETTER, CR_CASE_EVEN, "c"}, /* latin capital letter c with acute */
    {0x010E, 0x0111, CL_LETTER, CR_CASE_EVEN, "d"}, /* latin capital letter d with caron */
    {0x0112, 0x011B, CL_LETTER, CR_CASE_EVEN, "e"}, /* latin capital letter e with macron */
    {0x011C, 0x0123, CL_LETTER, CR_CASE_EVEN, "g"}, /* latin capital letter g with circumflex */
    {0x0124, 0x0127, CL_LETTER, CR_CASE_EVEN, "h"}, /* latin capital letter h with circumflex */
    {0x0128, 0x0131, CL_LETTER, CR_CASE_EVEN, "i"}, /* latin capital letter i with tilde */
    {0x0132, 0x0133, CL_LETTER, CR_CASE_EVEN, "ij"}, /* latin capital ligature ij */
    {0x0134, 0x0135, CL_LETTER, CR_CASE_EVEN, "j"}, /* latin capital letter j with circumflex */
    {0x0136, 0x0137, CL_LETTER, CR_CASE_EVEN, "k"}, /* latin capital letter k with cedilla */
    {0x0138, 0x0138, CL_LETTER, CR_LOWER, "k"}, /* latin small letter kra */
    {0x0139, 0x0142, CL_LETTER, CR_CASE_ODD, "l"}, /* latin capital letter l with acute */
    {0x0143, 0x0148, CL_LETTER, CR_CASE_ODD, "n"}, /* latin capital letter n with acute */
    {0x0149, 0x014B, CL_LETTER, CR_CASE_EVEN, "n"}, /* latin small letter n after apostrophe */
    {0x014C, 0x0151, CL_LETTER, CR_CASE_EVEN, "o"}, /* latin capital letter o with macron */
    {0x0152, 0x0153, CL_LETTER, CR_CASE_EVEN, "oe"}, /* latin capital ligature oe */
    {0x0154, 0x0159, CL_LETTER, CR_CASE_EVEN, "r"}, /* latin capital letter r with acute */
    {0x015A, 0x0161, CL_LETTER, CR_CASE_EVEN, "s"}, /* latin capital letter s with acute */
    {0x0162, 0x0167, CL_LETTER, CR_CASE_EVEN, "t"}, /* latin capital letter t with cedilla */
    {0x0168, 0x0173, CL_LETTER, CR_CASE_EVEN, "u"}, /* latin capital letter u with tilde */
    {0x0174, 0x0175, CL_LETTER, CR_CASE_EVEN, "w"}, /* latin capital letter w with circumflex */
    {0x0176, 0x0178, CL_LETTER, CR_CASE_EVEN, "y"}, /* latin capital letter y with circumflex */
    {0x0179, 0x017E, CL_LETTER, CR_CASE_ODD, "z"}, /* latin capital letter z with acute */
    {0x017F, 0x017F, CL_LETTER, CR_LOWER, "s"}, /* latin small letter long s */
    {0x0180, 0x0191, CL_LETTER, 0, "\x01"}, /* latin small letter b with stroke */
    {0x0192, 0x0192, CL_LETTER, CR_LOWER, "f"}, /* latin small letter f with hook */
    {0x0193, 0x02BB, CL_LETTER, 0, "\x01"}, /* latin capital letter g with hook */
    {0x02BC, 0x02BC, CL_APOS, CR_TIGHT, ""}, /* modifier letter apostrophe */
    {0x02BD, 0x02FF, CL_LETTER, 0, "\x01"}, /* modifier letter reversed comma */
    {0x0300, 0x036F, CL_IGNORE, 0, ""}, /* combining grave accent */
    {0x0370, 0x0390, CL_LETTER, 0, "\x01"}, /* greek capital letter heta */
    {0x0391, 0x0391, CL_LETTER, CR_UPPER, "a"}, /* greek capital letter alpha */
    {0x0392, 0x0392, CL_LETTER, CR_UPPER, "b"}, /* greek capital letter beta */
    {0x0393, 0x0394, CL_LETTER, 0, "\x01"}, /* greek capital letter gamma */
    {0x0395, 0x0395, CL_LETTER, CR_UPPER, "e"}, /* greek capital letter epsilon */
    {0x0396, 0x0396, CL_LETTER, CR_UPPER, "z"}, /* greek capital letter zeta */
    {0x0397, 0x0397, CL_LETTER, CR_UPPER, "h"}, /* greek capital letter eta */
    {0x0398, 0x0398, CL_LETTER, 0, "\x01"}, /* greek capital letter theta */
    {0x0399, 0x0399, CL_LETTER, CR_UPPER, "i"}, /* greek capital letter iota */
    {0x039A, 0x039A, CL_LETTER, CR_UPPER, "k"}, /* greek capital letter kappa */
    {0x039B, 0x039B, CL_LETTER, 0, "\x01"}, /* greek capital letter lamda */
    {0x039C, 0x039C, CL_LETTER, CR_UPPER, "m"}, /* greek capital letter mu */
    {0x039D, 0x039D, CL_LETTER, CR_UPPER, "n"}, /* greek capital letter nu */
    {0x039E, 0x039E, CL_LETTER, 0, "\x01"}, /* greek capital letter xi */
    {0x039F, 0x039F, CL_LETTER, CR_UPPER, "o"}, /* greek capital letter omicron */
    {0x03A0, 0x03A0, CL_LETTER, 0, "\x01"}, /* greek capital letter pi */
    {0x03A1, 0x03A1, CL_LETTER, CR_UPPER, "p"}, /* greek capital letter rho */
    {0x03A2, 0x03A3, CL_LETTER, 0, "\x01"}, /* unassigned */
    {0x03A4, 0x03A4, CL_LETTER, CR_UPPER, "t"}, /* greek capital letter tau */
    {0x03A5, 0x03A5, CL_LETTER, CR_UPPER, "y"}, /* greek capital letter upsilon */
    {0x03A6, 0x03A6, CL_LETTER, 0, "\x01"}, /* greek capital letter phi */
    {0x03A7, 0x03A7, CL_LETTER, CR_UPPER, "x"}, /* greek capital letter chi */
    {0x03A8, 0x03B0, CL_LETTER, 0, "\x01"}, /* greek capital letter psi */
    {0x03B1, 0x03B1, CL_LETTER, CR_LOWER, "a"}, /* greek small letter alpha */
    {0x03B2, 0x03B2, CL_LETTER, CR_LOWER, "b"}, /* greek small letter beta */
    {0x03B3, 0x03B4, CL_LETTER, 0, "\x01"}, /* greek small letter gamma */
    {0x03B5, 0x03B5, CL_LETTER, CR_LOWER, "e"}, /* greek small letter epsilon */
    {0x03B6, 0x03B8, CL_LETTER, 0, "\x01"}, /* greek small letter zeta */
    {0x03B9, 0x03B9, CL_LETTER, CR_LOWER, "i"}, /* greek small letter iota */
    {0x03BA, 0x03BA, CL_LETTER, CR_LOWER, "k"}, /* greek small letter kappa */
    {0x03BB, 0x03BC, CL_LETTER, 0, "\x01"}, /* greek small letter lamda */
    {0x03BD, 0x03BD, CL_LETTER, CR_LOWER, "v"}, /* greek small letter nu */
    {0x03BE, 0x03BE, CL_LETTER, 0, "\x01"}, /* greek small letter xi */
    {0x03BF, 0x03BF, CL_LETTER, CR_LOWER, "o"}, /* greek small letter omicron */
    {0x03C0, 0x03C0, CL_LETTER, 0, "\x01"}, /* greek small letter pi */
    {0x03C1, 0x03C1, CL_LETTER, CR_LOWER, "p"}, /* greek small letter rho */
    {0x03C2, 0x03C3, CL_LETTER, 0, "\x01"}, /* greek small letter final sigma */
    {0x03C4, 0x03C4, CL_LETTER, CR_LOWER, "t"}, /* greek small letter tau */
    {0x03C5, 0x03C5, CL_LETTER, CR_LOWER, "u"}, /* greek small letter upsilon */
    {0x03C6, 0x03C6, CL_LETTER, 0, "\x01"}, /* greek small letter phi */
    {0x03C7, 0x03C7, CL_LETTER, CR_LOWER, "x"}, /* greek small letter chi */
    {0x03C8, 0x03C8, CL_LETTER, 0, "\x01"}, /* greek small letter psi */
    {0x03C9, 0x03C9, CL_LETTER, CR_LOWER, "w"}, /* greek small letter omega */
    {0x03CA, 0x0404, CL_LETTER, 0, "\x01"}, /* greek small letter iota with dialytika */
    {0x0405, 0x0405, CL_LETTER, CR_UPPER, "s"}, /* cyrillic capital letter dze */
    {0x0406, 0x0406, CL_LETTER, CR_UPPER, "i"}, /* cyrillic capital letter ukrainian i */
    {0x0407, 0x0407, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter yi */
    {0x0408, 0x0408, CL_LETTER, CR_UPPER, "j"}, /* cyrillic capital letter je */
    {0x0409, 0x040F, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter lje */
    {0x0410, 0x0410, CL_LETTER, CR_UPPER, "a"}, /* cyrillic capital letter a */
    {0x0411, 0x0411, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter be */
    {0x0412, 0x0412, CL_LETTER, CR_UPPER, "b"}, /* cyrillic capital letter ve */
    {0x0413, 0x0414, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter ghe */
    {0x0415, 0x0415, CL_LETTER, CR_UPPER, "e"}, /* cyrillic capital letter ie */
    {0x0416, 0x0419, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter zhe */
    {0x041A, 0x041A, CL_LETTER, CR_UPPER, "k"}, /* cyrillic capital letter ka */
    {0x041B, 0x041B, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter el */
    {0x041C, 0x041C, CL_LETTER, CR_UPPER, "m"}, /* cyrillic capital letter em */
    {0x041D, 0x041D, CL_LETTER, CR_UPPER, "h"}, /* cyrillic capital letter en */
    {0x041E, 0x041E, CL_LETTER, CR_UPPER, "o"}, /* cyrillic capital letter o */
    {0x041F, 0x041F, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter pe */
    {0x0420, 0x0420, CL_LETTER, CR_UPPER, "p"}, /* cyrillic capital letter er */
    {0x0421, 0x0421, CL_LETTER, CR_UPPER, "c"}, /* cyrillic capital letter es */
    {0x0422, 0x0422, CL_LETTER, CR_UPPER, "t"}, /* cyrillic capital letter te */
    {0x0423, 0x0423, CL_LETTER, CR_UPPER, "y"}, /* cyrillic capital letter u */
    {0x0424, 0x0424, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter ef */
    {0x0425, 0x0425, CL_LETTER, CR_UPPER, "x"}, /* cyrillic capital letter ha */
    {0x0426, 0x042F, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter tse */
    {0x0430, 0x0430, CL_LETTER, CR_LOWER, "a"}, /* cyrillic small letter a */
    {0x0431, 0x0431, CL_LETTER, 0, "\x01"}, /* cyrillic small letter be */
    {0x0432, 0x0432, CL_LETTER, CR_LOWER, "b"}, /* cyrillic small letter ve */
    {0x0433, 0x0434, CL_LETTER, 0, "\x01"}, /* cyrillic small letter ghe */
    {0x0435, 0x0435, CL_LETTER, CR_LOWER, "e"}, /* cyrillic small letter ie */
    {0x0436, 0x0439, CL_LETTER, 0, "\x01"}, /* cyrillic small letter zhe */
    {0x043A, 0x043A, CL_LETTER, CR_LOWER, "k"}, /* cyrillic small letter ka */
    {0x043B, 0x043B, CL_LETTER, 0, "\x01"}, /* cyrillic small letter el */
    {0x043C, 0x043C, CL_LETTER, CR_LOWER, "m"}, /* cyrillic small letter em */
    {0x043D, 0x043D, CL_LETTER, CR_LOWER, "h"}, /* cyrillic small letter en */
    {0x043E, 0x043E, CL_LETTER, CR_LOWER, "o"}, /* cyrillic small letter o */
    {0x043F, 0x043F, CL_LETTER, 0, "\x01"}, /* cyrillic small letter pe */
    {0x0440, 0x0440, CL_LETTER, CR_LOWER, "p"}, /* cyrillic small letter er */
    {0x0441, 0x0441, CL_LETTER, CR_LOWER, "c"}, /* cyrillic small letter es */
    {0x0442, 0x0442, CL_LETTER, CR_LOWER, "t"}, /* cyrillic small letter te */
    {0x0443, 0x0443, CL_LETTER, CR_LOWER, "y"}, /* cyrillic small letter u */
    {0x0444, 0x0444, CL_LETTER, 0, "\x01"}, /* cyrillic small letter ef */
    {0x0445, 0x0445, CL_LETTER, CR_LOWER, "x"}, /* cyrillic small letter ha */
    {0x0446, 0x0450, CL_LETTER, 0, "\x01"}, /* cyrillic small letter tse */
    {0x0451, 0x0451, CL_LETTER, CR_LOWER, "e"}, /* cyrillic small letter io */
    {0x0452, 0x0454, CL_LETTER, 0, "\x01"}, /* cyrillic small letter dje */
    {0x0455, 0x0455, CL_LETTER, CR_LOWER, "s"}, /* cyrillic small letter dze */
    {0x0456, 0x0457, CL_LETTER, CR_LOWER, "i"}, /* cyrillic small letter ukrainian i */
    {0x0458, 0x0458, CL_LETTER, CR_LOWER, "j"}, /* cyrillic small letter je */
    {0x0459, 0x04BA, CL_LETTER, 0, "\x01"}, /* cyrillic small letter lje */
    {0x04BB, 0x04BB, CL_LETTER, CR_LOWER, "h"}, /* cyrillic small letter shha */
    {0x04BC, 0x0500, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter abkhasian che */
    {0x0501, 0x0501, CL_LETTER, CR_LOWER, "d"}, /* cyrillic small letter komi de */
    {0x0502, 0x051A, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter komi dje */
    {0x051B, 0x051B, CL_LETTER, CR_LOWER, "q"}, /* cyrillic small letter qa */
    {0x051C, 0x051C, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter we */
    {0x051D, 0x051D, CL_LETTER, CR_LOWER, "w"}, /* cyrillic small letter we */
    {0x051E, 0x167F, CL_LETTER, 0, "\x01"}, /* cyrillic capital letter aleut ka */
    {0x1680, 0x1680, CL_SPACE, 0, ""}, /* ogham space mark */
    {0x1681, 0x180D, CL_LETTER, 0, "\x01"}, /* ogham letter beith */
    {0x180E, 0x180E, CL_IGNORE, 0, ""}, /* mongolian vowel separator */
    {0x180F, 0x1AAF, CL_LETTER, 0, "\x01"}, /* mongolian free variation selector four */
    {0x1AB0, 0x1AFF, CL_IGNORE, 0, ""}, /* combining doubled circumflex accent */
    {0x1B00, 0x1DBF, CL_LETTER, 0, "\x01"}, /* balinese sign ulu ricem */
    {0x1DC0, 0x1DFF, CL_IGNORE, 0, ""}, /* combining dotted grave accent */
    {0x1E00, 0x1FFF, CL_LETTER, 0, "\x01"}, /* latin capital letter a with ring below */
    {0x2000, 0x200A, CL_SPACE, 0, ""}, /* en quad */
    {0x200B, 0x200F, CL_IGNORE, 0, ""}, /* zero width space */
    {0x2010, 0x2011, CL_SEP, CR_TIGHT, ""}, /* hyphen */
    {0x2012, 0x2012, CL_SEP, 0, ""}, /* figure dash */
    {0x2013, 0x2013, CL_SEP, CR_TIGHT, ""}, /* en dash */
    {0x2014, 0x2017, CL_SEP, 0, ""}, /* em dash */
    {0x2018, 0x2019, CL_APOS, CR_TIGHT, ""}, /* left single quotation mark */
    {0x201A, 0x2021, CL_SEP, 0, ""}, /* single low-9 quotation mark */
    {0x2022, 0x2022, CL_SEP, CR_TIGHT, ""}, /* bullet */
    {0x2023, 0x2027, CL_SEP, 0, ""}, /* triangular bullet */
    {0x2028, 0x2029, CL_SPACE, CR_BRK, ""}, /* line separator */
    {0x202A, 0x202E, CL_SEP, 0, ""}, /* left-to-right embedding */
    {0x202F, 0x202F, CL_SPACE, 0, ""}, /* narrow no-break space */
    {0x2030, 0x2031, CL_SEP, 0, ""}, /* per mille sign */
    {0x2032, 0x2032, CL_APOS, CR_TIGHT, ""}, /* prime */
    {0x2033, 0x205E, CL_SEP, 0, ""}, /* double prime */
    {0x205F, 0x205F, CL_SPACE, 0, ""}, /* medium math space */
    {0x2060, 0x2064, CL_IGNORE, 0, ""}, /* word joiner */
    {0x2065, 0x20AB, CL_SEP, 0, ""}, /* unassigned */
    {0x20AC, 0x20AC, CL_LEET, 0, "3"}, /* euro sign */
    {0x20AD, 0x20CF, CL_SEP, 0, ""}, /* kip sign */
    {0x20D0, 0x20FF, CL_IGNORE, 0, ""}, /* combining left harpoon above */
    {0x2100, 0x249B, CL_SEP, 0, ""}, /* account of */
    {0x249C, 0x24B5, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* parenthesized latin small letter a */
    {0x24B6, 0x24CF, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* circled latin capital letter a */
    {0x24D0, 0x24E9, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* circled latin small letter a */
    {0x24EA, 0x2BFF, CL_SEP, 0, ""}, /* circled digit zero */
    {0x2C00, 0x2DFF, CL_LETTER, 0, "\x01"}, /* glagolitic capital letter azu */
    {0x2E00, 0x2E7F, CL_SEP, 0, ""}, /* right angle substitution marker */
    {0x2E80, 0x2FFF, CL_LETTER, 0, "\x01"}, /* cjk radical repeat */
    {0x3000, 0x3000, CL_SPACE, 0, ""}, /* ideographic space */
    {0x3001, 0x3001, CL_SEP, 0, ""}, /* ideographic comma */
    {0x3002, 0x3002, CL_SEP, CR_BRK, ""}, /* ideographic full stop */
    {0x3003, 0x303F, CL_SEP, 0, ""}, /* ditto mark */
    {0x3040, 0xD7FF, CL_LETTER, 0, "\x01"}, /* kana, cjk, hangul */
    {0xD800, 0xF8FF, CL_SEP, 0, ""}, /* surrogate */
    {0xF900, 0xFDFF, CL_LETTER, 0, "\x01"}, /* cjk compatibility ideograph-f900 */
    {0xFE00, 0xFE0F, CL_IGNORE, 0, ""}, /* variation selector-1 */
    {0xFE10, 0xFE1F, CL_LETTER, 0, "\x01"}, /* presentation form for vertical comma */
    {0xFE20, 0xFE2F, CL_IGNORE, 0, ""}, /* combining ligature left half */
    {0xFE30, 0xFE6F, CL_SEP, 0, ""}, /* presentation form for vertical two dot leader */
    {0xFE70, 0xFEFE, CL_LETTER, 0, "\x01"}, /* arabic fathatan isolated form */
    {0xFEFF, 0xFEFF, CL_IGNORE, 0, ""}, /* zero width no-break space */
    {0xFF00, 0xFF00, CL_SEP, 0, ""}, /* unassigned */
    {0xFF01, 0xFF01, CL_LEET, CR_BRK, "!"}, /* fullwidth exclamation mark */
    {0xFF02, 0xFF02, CL_SEP, CR_TIGHT, ""}, /* fullwidth quotation mark */
    {0xFF03, 0xFF03, CL_MASK, 0, "*"}, /* fullwidth number sign */
    {0xFF04, 0xFF04, CL_LEET, 0, "$"}, /* fullwidth dollar sign */
    {0xFF05, 0xFF06, CL_SEP, 0, ""}, /* fullwidth percent sign */
    {0xFF07, 0xFF07, CL_APOS, CR_TIGHT, ""}, /* fullwidth apostrophe */
    {0xFF08, 0xFF09, CL_SEP, 0, ""}, /* fullwidth left parenthesis */
    {0xFF0A, 0xFF0A, CL_MASK, 0, "*"}, /* fullwidth asterisk */
    {0xFF0B, 0xFF0B, CL_LEET, 0, "+"}, /* fullwidth plus sign */
    {0xFF0C, 0xFF0F, CL_SEP, CR_TIGHT, ""}, /* fullwidth comma */
    {0xFF10, 0xFF19, CL_DIGIT, CR_SEQ, "0"}, /* fullwidth digit zero */
    {0xFF1A, 0xFF1B, CL_SEP, CR_TIGHT, ""}, /* fullwidth colon */
    {0xFF1C, 0xFF1C, CL_SEP, 0, ""}, /* fullwidth less-than sign */
    {0xFF1D, 0xFF1D, CL_SEP, CR_TIGHT, ""}, /* fullwidth equals sign */
    {0xFF1E, 0xFF1E, CL_SEP, 0, ""}, /* fullwidth greater-than sign */
    {0xFF1F, 0xFF1F, CL_SEP, CR_BRK, ""}, /* fullwidth question mark */
    {0xFF20, 0xFF20, CL_LEET, 0, "@"}, /* fullwidth commercial at */
    {0xFF21, 0xFF3A, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* fullwidth latin capital letter a */
    {0xFF3B, 0xFF3B, CL_SEP, 0, ""}, /* fullwidth left square bracket */
    {0xFF3C, 0xFF3C, CL_SEP, CR_TIGHT, ""}, /* fullwidth reverse solidus */
    {0xFF3D, 0xFF3D, CL_SEP, 0, ""}, /* fullwidth right square bracket */
    {0xFF3E, 0xFF3F, CL_SEP, CR_TIGHT, ""}, /* fullwidth circumflex accent */
    {0xFF40, 0xFF40, CL_APOS, CR_TIGHT, ""}, /* fullwidth grave accent */
    {0xFF41, 0xFF5A, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* fullwidth latin small letter a */
    {0xFF5B, 0xFF5B, CL_SEP, 0, ""}, /* fullwidth left curly bracket */
    {0xFF5C, 0xFF5C, CL_LEET, 0, "|"}, /* fullwidth vertical line */
    {0xFF5D, 0xFF5D, CL_SEP, 0, ""}, /* fullwidth right curly bracket */
    {0xFF5E, 0xFF5E, CL_SEP, CR_TIGHT, ""}, /* fullwidth tilde */
    {0xFF5F, 0xFFFF, CL_SEP, 0, ""}, /* fullwidth left white parenthesis */
    {0x10000, 0x1D3FF, CL_LETTER, 0, "\x01"}, /* linear b syllable b008 a */
    {0x1D400, 0x1D419, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math bold capital a */
    {0x1D41A, 0x1D433, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math bold small a */
    {0x1D434, 0x1D44D, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math italic capital a */
    {0x1D44E, 0x1D467, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math italic small a */
    {0x1D468, 0x1D481, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math bold italic capital a */
    {0x1D482, 0x1D49B, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math bold italic small a */
    {0x1D49C, 0x1D4B5, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math script capital a */
    {0x1D4B6, 0x1D4CF, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math script small a */
    {0x1D4D0, 0x1D4E9, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math bold script capital a */
    {0x1D4EA, 0x1D503, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math bold script small a */
    {0x1D504, 0x1D51D, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math fraktur capital a */
    {0x1D51E, 0x1D537, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math fraktur small a */
    {0x1D538, 0x1D551, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math double-struck capital a */
    {0x1D552, 0x1D56B, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math double-struck small a */
    {0x1D56C, 0x1D585, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math bold fraktur capital a */
    {0x1D586, 0x1D59F, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math bold fraktur small a */
    {0x1D5A0, 0x1D5B9, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math sans-serif capital a */
    {0x1D5BA, 0x1D5D3, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math sans-serif small a */
    {0x1D5D4, 0x1D5ED, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math sans-serif bold capital a */
    {0x1D5EE, 0x1D607, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math sans-serif bold small a */
    {0x1D608, 0x1D621, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math sans-serif italic capital a */
    {0x1D622, 0x1D63B, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math sans-serif italic small a */
    {0x1D63C, 0x1D655, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math sans-serif bold italic cap. a */
    {0x1D656, 0x1D66F, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math sans-serif bold italic small a */
    {0x1D670, 0x1D689, CL_LETTER, CR_SEQ | CR_UPPER, "a"}, /* math monospace capital a */
    {0x1D68A, 0x1D6A3, CL_LETTER, CR_SEQ | CR_LOWER, "a"}, /* math monospace small a */
    {0x1D6A4, 0x1D7CD, CL_LETTER, 0, "\x01"}, /* math italic small dotless i */
    {0x1D7CE, 0x1D7D7, CL_DIGIT, CR_SEQ, "0"}, /* math bold digit zero */
    {0x1D7D8, 0x1D7E1, CL_DIGIT, CR_SEQ, "0"}, /* math double-struck digit zero */
    {0x1D7E2, 0x1D7EB, CL_DIGIT, CR_SEQ, "0"}, /* math sans-serif digit zero */
    {0x1D7EC, 0x1D7F5, CL_DIGIT, CR_SEQ, "0"}, /* math sans-serif bold digit zero */
    {0x1D7F6, 0x1D7FF, CL_DIGIT, CR_SEQ, "0"}, /* math monospace digit zero */
    {0x1D800, 0x1EFFF, CL_LETTER, 0, "\x01"}, /* signwriting hand-fist index */
    {0x1F000, 0x1F12F, CL_SEP, 0, ""}, /* mahjong tile east wind */
    {0x1F130, 0x1F149, CL_LETTER, CR_SEQ, "a"}, /* squared latin capital letter a */
    {0x1F14A, 0x1F14F, CL_SEP, 0, ""}, /* squared hv */
    {0x1F150, 0x1F169, CL_LETTER, CR_SEQ, "a"}, /* negative circled latin capital letter a */
    {0x1F16A, 0x1F16F, CL_SEP, 0, ""}, /* raised mc sign */
    {0x1F170, 0x1F189, CL_LETTER, CR_SEQ, "a"}, /* negative squared latin capital letter a */
    {0x1F18A, 0x1F1E5, CL_SEP, 0, ""}, /* crossed negative squared latin capital letter p */
    {0x1F1E6, 0x1F1FF, CL_LETTER, CR_SEQ, "a"}, /* regional indicator symbol letter a */
    {0x1F200, 0x1FAFF, CL_SEP, 0, ""}, /* square hiragana hoka */
    {0x1FB00, 0xE00FF, CL_LETTER, 0, "\x01"}, /* block sextant-1 */
    {0xE0100, 0xE01EF, CL_IGNORE, 0, ""}, /* variation selector-17 */
    {0xE01F0, 0x10FFFF, CL_LETTER, 0, "\x01"}, /* unassigned */
    {0x110000, 0xFFFFFFFF, CL_SEP, 0, ""}, /* beyond Unicode */
};

#define NRANGES (sizeof ranges / sizeof ranges[0])

/* The range holding cp: a binary search without branches on the data (this runs for every
 * code point of every text). */
static const struct cprange *find_range(uint32_t cp)
{
    const struct cprange *base = ranges;
    size_t n = NRANGES;
    while (n > 1) {
        size_t half = n / 2;
        base = base[half].first <= cp ? base + half : base;
        n -= half;
    }
    return base;
}

void modengine__classify(uint32_t cp, struct cpinfo *ci)
{
    const struct cprange *r = find_range(cp);
    unsigned f = r->flags;
    int odd = cp & 1;
    memset(ci, 0, sizeof *ci);
    ci->cls = r->cls;
    ci->n = r->out[0] ? (r->out[1] ? 2 : 1) : 0;
    ci->out[0] = (char)(r->out[0] + (f & CR_SEQ ? cp - r->first : 0));
    ci->out[1] = r->out[1];
    ci->upper = (f & CR_UPPER) || ((f & CR_CASE_EVEN) && !odd) || ((f & CR_CASE_ODD) && odd);
    ci->lower = (f & CR_LOWER) || ((f & CR_CASE_EVEN) && odd) || ((f & CR_CASE_ODD) && !odd);
    ci->brk = !!(f & CR_BRK);
    ci->tight = !!(f & CR_TIGHT);
}

void modengine__build_latin1(modengine_t *e)
{
    for (uint32_t cp = 0; cp < 256; cp++)
        modengine__classify(cp, &e->latin1[cp]);
}

/* Lenient UTF-8 decoding: an invalid byte reads as U+FFFD and advances one byte. */
uint32_t modengine__decode(const uint8_t *s, size_t len, size_t *i)
{
    uint32_t c = s[*i];
    size_t n, k;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 1;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        c &= 0x07;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (*i + n >= len) {
        (*i)++;
        return 0xFFFD;
    }
    for (k = 1; k <= n; k++) {
        uint8_t b = s[*i + k];
        if ((b & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        c = (c << 6) | (b & 0x3F);
    }
    if ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF)) {
        (*i)++;
        return 0xFFFD;
    }
    *i += n + 1;
    return c;
}

/* The letter a digit or l33t symbol stands for, and its second reading (0 = none). A
 * symbol with no letter stays as it is and never matches a list word. */
char modengine__leet(char c, char *alt)
{
    *alt = 0;
    switch (c) {
    case '0': return 'o';
    case '1': *alt = 'l'; return 'i';
    case '3': return 'e';
    case '4': return 'a';
    case '5': return 's';
    case '6': *alt = 'b'; return 'g';
    case '7': return 't';
    case '8': return 'b';
    case '9': return 'g';
    case '@': return 'a';
    case '$': return 's';
    case '!': *alt = 'l'; return 'i';
    case '|': *alt = 'i'; return 'l';
    case '+': return 't';
    default: return c;
    }
}
